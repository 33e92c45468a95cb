"""The critic head: zero start, and float32 values even inside the trainer's bf16 autocast region."""

from __future__ import annotations

import torch

from rlvla_cli.models.value_head import ValueHead


def test_values_start_at_zero():
    head = ValueHead(16, num_values=3, hidden_dim=32)
    assert torch.equal(head(torch.randn(5, 16)), torch.zeros(5, 3))


def test_fp32_head_ignores_bf16_autocast():
    torch.manual_seed(0)
    head = ValueHead(16, hidden_dim=64)
    torch.nn.init.normal_(head.net[-1].weight)  # non-zero values, so bf16 rounding would show
    features = torch.randn(8, 16)
    expected = head(features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = head(features.bfloat16())  # what a bf16 trunk under autocast hands over
        plain_bf16 = head.net(features)  # the same layers left to autocast: bf16 matmuls
    assert inside.dtype == torch.float32
    assert torch.allclose(inside, head(features.bfloat16().float()), atol=0, rtol=0)
    assert not torch.equal(plain_bf16.float(), expected)  # the case the head guards against

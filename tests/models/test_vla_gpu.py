"""Full-size OpenVLA / OpenVLA-OFT (random weights, bf16) on one GPU: they build, act and recompute."""

from __future__ import annotations

import time

import pytest
import torch
from vla_helpers import make_obs

from rlvla_cli.config.model import OpenVLAModelConfig, OpenVLAOFTModelConfig
from rlvla_cli.models.registry import build_policy

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.mark.parametrize("cfg_cls", [OpenVLAModelConfig, OpenVLAOFTModelConfig])
def test_full_size_lora_step(cfg_cls):
    torch.manual_seed(0)
    start = time.perf_counter()
    cfg = cfg_cls(size="full", precision="bf16", add_value_head=True, is_lora=True, lora_rank=32,
                  gradient_checkpointing=True)
    policy = build_policy(cfg, device="cuda")
    built = time.perf_counter() - start
    obs = make_obs(8, size=224, state_dim=8)
    policy.predict(obs, "train")  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = policy.predict(obs, "train")
    torch.cuda.synchronize()
    latency = time.perf_counter() - start
    policy.train()
    ev = policy.evaluate(out.forward_inputs)
    # bf16: recompute in a different kernel order (no KV cache, longer sequence) agrees to bf16 precision
    assert (ev.logprobs - out.logprobs).abs().mean() < 0.05
    (ev.logprobs.mean() + ev.values.mean()).backward()
    assert all(p.grad is not None for p in policy.value_head_parameters())
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"{cfg.model_type}: build {built:.1f}s, predict(8) {latency * 1000:.0f} ms, peak {peak:.1f} GiB")
    assert peak < 75

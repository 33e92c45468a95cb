"""Grouped-query attention with the query heads folded into the query length: the same numbers and gradients
as SDPA's own GQA, and no K/V copy per query head kept for backward (what SDPA's math path does)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from rlvla_cli.models.openpi.attention import fold_query_mask, grouped_query_attention


def _inputs(heads: int, groups: int, generator: torch.Generator):
    batch, length, keys, dim = 2, 5, 9, 8
    q = torch.randn(batch, heads, length, dim, generator=generator, requires_grad=True)
    k = torch.randn(batch, groups, keys, dim, generator=generator, requires_grad=True)
    v = torch.randn(batch, groups, keys, dim, generator=generator, requires_grad=True)
    allowed = torch.rand(batch, 1, length, keys, generator=generator) > 0.3
    allowed[..., 0] = True  # every query sees at least one key
    mask = torch.where(allowed, 0.0, -1e9)
    return q, k, v, mask


@pytest.mark.parametrize(("heads", "groups"), [(8, 1), (8, 2), (4, 4)])
def test_same_output_and_gradients_as_sdpa_gqa(heads, groups):
    q, k, v, mask = _inputs(heads, groups, torch.Generator().manual_seed(heads + groups))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3, enable_gqa=True)
    grads_expected = torch.autograd.grad(expected.square().sum(), (q, k, v))
    got = grouped_query_attention(q, k, v, fold_query_mask(mask, heads, groups), scale=0.3)
    grads_got = torch.autograd.grad(got.square().sum(), (q, k, v))
    assert torch.allclose(got, expected, atol=1e-5)
    for a, b in zip(grads_got, grads_expected, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_no_key_value_copy_per_query_head_is_saved():
    q, k, v, mask = _inputs(8, 1, torch.Generator().manual_seed(0))
    folded = fold_query_mask(mask, 8, 1)

    def saved_shapes(fn) -> list[tuple[int, ...]]:
        shapes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: (shapes.append(tuple(t.shape)), t)[1], lambda t: t):
            with sdpa_kernel(SDPBackend.MATH):  # the path CUDA takes for a masked GQA call
                fn()
        return shapes

    repeated = (2 * 8, 9, 8)  # [B x heads, keys, dim]: K or V repeated to every query head
    assert repeated in saved_shapes(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True))
    assert repeated not in saved_shapes(lambda: grouped_query_attention(q, k, v, folded))


def test_heads_must_divide_into_groups():
    with pytest.raises(ValueError, match="do not divide"):
        fold_query_mask(torch.zeros(1, 1, 2, 3), heads=6, groups=4)

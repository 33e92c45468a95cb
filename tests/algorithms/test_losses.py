"""PPO policy / value / entropy losses: hand-computed cases where the clip, dual clip and value clip bind."""

from __future__ import annotations

import math

import pytest
import torch

from rlvla_cli.algorithms import (
    broadcast_advantages,
    explained_variance,
    mean_entropy,
    ppo_policy_loss,
    reduce_per_level,
    value_loss,
)

CLIPS = {"clip_ratio_low": 0.2, "clip_ratio_high": 0.2}


def _per_term(ratio: list[float], adv: list[float], **kw):
    """Loss of each term alone (mask picks one) and the gradient wrt the new log-prob."""
    logp = torch.tensor([math.log(r) for r in ratio], dtype=torch.float64, requires_grad=True)
    old = torch.zeros_like(logp)
    advantages = torch.tensor(adv, dtype=torch.float64)
    losses = []
    for i in range(len(ratio)):
        mask = torch.zeros(len(ratio), dtype=torch.bool)
        mask[i] = True
        losses.append(float(ppo_policy_loss(logp, old, advantages, mask, **CLIPS, **kw)[0].detach()))
    loss, metrics = ppo_policy_loss(logp, old, advantages, None, **CLIPS, **kw)
    loss.backward()
    return losses, logp.grad, metrics


def test_clip_binds_only_where_the_ratio_leaves_the_trust_region_in_the_helpful_direction():
    # ratio, A   -> unclipped -A r, clipped -A clip(r, 0.8, 1.2), loss = max
    # 1.5, +1    -> -1.5, -1.2 -> -1.2  (clip binds: no gradient)
    # 0.5, +1    -> -0.5, -0.8 -> -0.5  (unclipped: gradient -A r = -0.5 per term, / 4 for the mean)
    # 0.5, -1    ->  0.5,  0.8 ->  0.8  (clip binds)
    # 1.1, -1    ->  1.1,  1.1 ->  1.1  (inside the region)
    losses, grad, metrics = _per_term([1.5, 0.5, 0.5, 1.1], [1.0, 1.0, -1.0, -1.0])
    assert losses == pytest.approx([-1.2, -0.5, 0.8, 1.1])
    # d(-A r)/d logp = -A r; mean over 4 terms
    assert grad.tolist() == pytest.approx([0.0, -0.5 / 4, 0.0, 1.1 / 4])
    assert float(metrics["clip_fraction"]) == pytest.approx(0.5)
    assert float(metrics["ratio"]) == pytest.approx((1.5 + 0.5 + 0.5 + 1.1) / 4)


def test_asymmetric_clip_uses_separate_bounds():
    logp = torch.tensor([math.log(1.25)])
    loss, _ = ppo_policy_loss(logp, torch.zeros(1), torch.ones(1), None, clip_ratio_low=0.2, clip_ratio_high=0.28)
    assert float(loss) == pytest.approx(-1.25)  # 1.25 < 1 + 0.28: not clipped
    loss, _ = ppo_policy_loss(logp, torch.zeros(1), torch.ones(1), None, clip_ratio_low=0.2, clip_ratio_high=0.2)
    assert float(loss) == pytest.approx(-1.2)


def test_dual_clip_bounds_negative_advantage_terms():
    # ratio 4, A -1: max(4, 1.2) = 4 > c|A| = 3 -> 3 (dual clip binds, no gradient)
    # ratio 2, A -2: max(4, 2.4) = 4 < c|A| = 6 -> 4 (gradient -A r = 4)
    # ratio 4, A +1: max(-4, -1.2) = -1.2 (dual clip never applies to A > 0)
    losses, grad, metrics = _per_term([4.0, 2.0, 4.0], [-1.0, -2.0, 1.0], clip_ratio_c=3.0)
    assert losses == pytest.approx([3.0, 4.0, -1.2])
    assert grad.tolist() == pytest.approx([0.0, 4.0 / 3, 0.0])
    assert float(metrics["dual_clip_fraction"]) == pytest.approx(1 / 3)
    off, _, off_metrics = _per_term([4.0], [-1.0], clip_ratio_c=None)
    assert off == pytest.approx([4.0]) and float(off_metrics["dual_clip_fraction"]) == 0.0


def test_log_ratio_clamp_and_approx_kl():
    big = torch.tensor([50.0])
    loss, metrics = ppo_policy_loss(big, torch.zeros(1), -torch.ones(1), None, **CLIPS, logprob_ratio_clamp=20.0)
    assert float(metrics["ratio"]) == pytest.approx(math.exp(20.0), rel=1e-5)
    assert math.isfinite(float(loss))
    # k3 estimator (r - 1) - log r at r = 2: 1 - log 2
    _, metrics = ppo_policy_loss(torch.tensor([math.log(2.0)]), torch.zeros(1), torch.ones(1), None, **CLIPS)
    assert float(metrics["approx_kl"]) == pytest.approx(1 - math.log(2.0), rel=1e-5)


def test_masked_terms_do_not_count():
    logp = torch.tensor([0.0, 0.0])
    loss, _ = ppo_policy_loss(logp, logp, torch.tensor([2.0, 100.0]), torch.tensor([True, False]), **CLIPS)
    assert float(loss) == pytest.approx(-2.0)
    empty, _ = ppo_policy_loss(logp, logp, torch.ones(2), torch.zeros(2, dtype=torch.bool), **CLIPS)
    assert float(empty) == 0.0


def test_value_clip_takes_the_pessimistic_loss():
    # R = 1, V_old = 0, eps_v = 0.2, Huber delta 10 (quadratic region: 0.5 e^2)
    # V = 0.5  -> V_clip = 0.2:  0.5*0.5^2 = 0.125 vs 0.5*0.8^2 = 0.32 -> 0.32 (clip binds)
    # V = 0.1  -> V_clip = 0.1:  0.405 both                                  (inside)
    # V = -0.5 -> V_clip = -0.2: 0.5*1.5^2 = 1.125 vs 0.5*1.2^2 = 0.72 -> 1.125
    values = torch.tensor([0.5, 0.1, -0.5])
    old, returns = torch.zeros(3), torch.ones(3)
    per_term = [
        float(value_loss(values, old, returns, torch.arange(3) == i, value_clip=0.2, huber_delta=10.0)[0])
        for i in range(3)
    ]
    assert per_term == pytest.approx([0.32, 0.405, 1.125])
    _, metrics = value_loss(values, old, returns, None, value_clip=0.2, huber_delta=10.0)
    assert float(metrics["value_clip_ratio"]) == pytest.approx(1 / 3)
    unclipped, _ = value_loss(values, old, returns, None, value_clip=None, huber_delta=10.0)
    assert float(unclipped) == pytest.approx((0.125 + 0.405 + 1.125) / 3)


def test_huber_is_linear_beyond_delta():
    # error 3, delta 1: delta * (|e| - delta / 2) = 2.5
    loss, _ = value_loss(torch.zeros(1), None, torch.tensor([3.0]), None, value_clip=None, huber_delta=1.0)
    assert float(loss) == pytest.approx(2.5)


def test_levels_sum_log_probs_and_entropies():
    x = torch.ones(4, 2, 3)  # [N, C, A]
    assert reduce_per_level(x, "token_level").shape == (4, 2, 3)
    assert reduce_per_level(x, "action_level").tolist() == [[3.0, 3.0]] * 4
    assert reduce_per_level(x, "chunk_level").tolist() == [6.0] * 4
    mask = torch.tensor([True, True, False, False])
    assert float(mean_entropy(x, mask, "token_level")) == 1.0
    assert float(mean_entropy(x, mask, "action_level")) == 3.0
    assert float(mean_entropy(x, mask, "chunk_level")) == 6.0
    adv = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert broadcast_advantages(adv, x)[:, 1, 2].tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="chunk-level"):
        broadcast_advantages(torch.ones(4, 2), torch.ones(4))


def test_explained_variance():
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns.clone(), returns, None) == pytest.approx(1.0)
    # V = mean(R): Var(R - V) = Var(R) -> 0
    assert explained_variance(torch.full((4,), 2.5), returns, None) == pytest.approx(0.0)
    assert explained_variance(torch.zeros(2), torch.ones(2), None) == 0.0  # constant returns: defined as 0

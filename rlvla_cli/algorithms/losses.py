"""PPO losses as pure tensor functions: clipped policy loss (+ dual clip), clipped Huber value loss, entropy.

References: PPO (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7); dual clip (Ye et al.
2020, "Mastering Complex Control in MOBA Games with Deep RL", eq. 5); value clipping as in OpenAI baselines'
PPO2. Inputs are already reduced to one level (see ``levels.py``): shape ``[N, ...]`` with N samples and a bool
``mask [N]`` broadcast over the trailing dims. Metrics are detached scalar tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlvla_cli.algorithms.aggregation import aggregate
from rlvla_cli.algorithms.levels import masked_mean, masked_var, reduce_per_level


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    clip_ratio_low: float,
    clip_ratio_high: float,
    clip_ratio_c: float | None = None,
    logprob_ratio_clamp: float | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate loss (to minimise), masked mean over every term (``weights`` ``[N]``: RLinf's
    per-episode weighting instead, see ``aggregation.py``).

    logprobs / old_logprobs / advantages: ``[N, ...]`` (one shape; advantages already broadcast), mask ``[N]``.

        log_r = clamp(logp - logp_old, -k, k)            (k = logprob_ratio_clamp; off when None)
        r     = exp(log_r)
        L     = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))
        L     = min(L, c |A|)   where A < 0              (dual clip; off when clip_ratio_c is None)

    Metrics: ``approx_kl`` (k3 estimator E[(r - 1) - log r], Schulman 2020), ``clip_fraction`` (terms where
    the clip binds, i.e. its gradient is zero), ``ratio`` (mean r), ``dual_clip_fraction`` (terms where the
    dual clip binds).
    """
    log_ratio = logprobs - old_logprobs
    if logprob_ratio_clamp is not None:
        log_ratio = log_ratio.clamp(-logprob_ratio_clamp, logprob_ratio_clamp)
    ratio = torch.exp(log_ratio)
    clipped_ratio = ratio.clamp(1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    unclipped_loss = -advantages * ratio
    clipped_loss = -advantages * clipped_ratio
    loss = torch.maximum(unclipped_loss, clipped_loss)
    clip_binds = clipped_loss > unclipped_loss
    dual_binds = torch.zeros_like(clip_binds)
    if clip_ratio_c is not None:
        dual_bound = clip_ratio_c * advantages.abs()
        dual_binds = (advantages < 0) & (loss > dual_bound)
        loss = torch.where(dual_binds, dual_bound, loss)
    with torch.no_grad():
        metrics = {
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "clip_fraction": masked_mean(clip_binds.float(), mask),
            "ratio": masked_mean(ratio, mask),
            "dual_clip_fraction": masked_mean(dual_binds.float(), mask),
        }
    return aggregate(loss, mask, weights), metrics


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor | None,
    returns: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    value_clip: float | None,
    huber_delta: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped Huber value loss, masked mean (or ``weights`` ``[N]``: RLinf's per-episode weighting):
    ``max(huber(R - V), huber(R - V_clip))``.

    values / old_values / returns: one shape ``[N, ...]``; ``V_clip = V_old + clamp(V - V_old, -eps_v, eps_v)``
    with ``eps_v = value_clip`` (None, or no old values: plain Huber). Metric ``value_clip_ratio``: fraction of
    terms where the clipped loss is the larger one (the clip binds).
    """
    returns = returns.to(values.dtype)
    loss = F.huber_loss(values, returns, reduction="none", delta=huber_delta)
    clip_binds = torch.zeros_like(loss, dtype=torch.bool)
    if value_clip is not None and old_values is not None:
        old_values = old_values.to(values.dtype)
        clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
        clipped_loss = F.huber_loss(clipped, returns, reduction="none", delta=huber_delta)
        clip_binds = clipped_loss > loss
        loss = torch.maximum(loss, clipped_loss)
    with torch.no_grad():
        metrics = {"value_clip_ratio": masked_mean(clip_binds.float(), mask)}
    return aggregate(loss, mask, weights), metrics


def mean_entropy(entropy: torch.Tensor, mask: torch.Tensor | None, entropy_type: str) -> torch.Tensor:
    """Per-dimension entropies ``[N, C, A]`` summed to ``entropy_type`` level, then masked mean (a scalar).

    The entropy-bonus loss term is ``-entropy_bonus * mean_entropy(...)``.
    """
    return masked_mean(reduce_per_level(entropy, entropy_type), mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor | None) -> float:
    """``1 - Var(R - V) / Var(R)`` over masked entries (shapes ``[N, ...]``, mask ``[N]``); 0.0 when Var(R) = 0."""
    returns = returns.to(values.dtype)
    var_returns = masked_var(returns, mask)
    if float(var_returns) <= 1e-12:
        return 0.0
    return float(1.0 - masked_var(returns - values, mask) / var_returns)

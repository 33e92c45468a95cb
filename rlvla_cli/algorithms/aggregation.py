"""How per-sample loss terms become one scalar (``algorithm.loss_agg``).

- ``masked_mean`` (rlvla's default): mean over the loss-masked terms; a long episode contributes more terms, so
  it weighs more.
- ``episode_weighted`` (RLinf's embodied worker without auto-reset): ``mean over all N terms of
  L * mask * (H / episode_len)``, so every env's episode gets the same total weight whatever its length. RLinf
  passes ``loss_mask_sum`` (valid env steps per env) and ``max_episode_steps`` to its PPO actor and critic losses,
  which then aggregate with ``masked_mean_ratio``: ``(values / (loss_mask_sum / max_episode_steps) * mask).mean()``
  (RLinf/RLinf rlinf/algorithms/losses.py: compute_ppo_actor_loss / compute_ppo_critic_loss;
  rlinf/utils/utils.py: masked_mean_ratio; rlinf/utils/metric_utils.py: compute_loss_mask). Its yaml key
  ``loss_agg_func: token-mean`` is never read on that path.

Shapes: T chunk steps, B envs, C actions per chunk, N samples.
"""

from __future__ import annotations

import torch

from rlvla_cli.algorithms.levels import _expand_mask, flatten_action_steps, masked_mean

MASKED_MEAN, EPISODE_WEIGHTED = "masked_mean", "episode_weighted"


def episode_lengths(dones: torch.Tensor) -> torch.Tensor:
    """Env steps of each env's first episode in the rollout: int64 ``[B]``.

    dones: bool ``[T, B, C]`` (termination or truncation after each executed action). The action in which the
    episode ends counts; an env whose episode never ends inside the rollout counts every one of its ``T * C``
    actions. This is RLinf's ``loss_mask_sum`` (``compute_loss_mask``: actions before and at the first done).
    """
    flat = flatten_action_steps(dones).long()  # [T * C, B] in execution order
    ended_before = torch.cumsum(flat, dim=0) - flat
    return (ended_before == 0).sum(0)


def episode_weights(dones: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
    """Per-sample weights ``horizon / episode_len`` broadcast over time: float32 ``[T, B]``.

    horizon defaults to ``T * C`` (the rollout's env steps per env), RLinf's ``max_episode_steps`` in every
    recipe that runs without auto-reset (there both are equal: 80 ManiSkill, 240 LIBERO-Spatial, 480 LIBERO-10).
    """
    t, b, c = dones.shape
    lengths = episode_lengths(dones).clamp_min(1).to(torch.float32)
    scale = float(horizon if horizon is not None else t * c)
    return (scale / lengths).unsqueeze(0).expand(t, b).contiguous()


def weighted_mean(x: torch.Tensor, mask: torch.Tensor | None, weights: torch.Tensor) -> torch.Tensor:
    """``mean over every element of x * mask * weights`` (RLinf's ``masked_mean_ratio``; masked terms still count
    in the denominator). x ``[N, ...]``; mask bool ``[N]`` or None; weights float ``[N]``, broadcast like mask."""
    w = _expand_mask(weights.to(x.dtype), x)
    if mask is not None:
        w = w * _expand_mask(mask, x).to(x.dtype)
    return (x * w).mean()


def aggregate(x: torch.Tensor, mask: torch.Tensor | None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The loss scalar: ``weighted_mean`` when per-sample ``weights`` are given (``episode_weighted``), else the
    masked mean."""
    if weights is None:
        return masked_mean(x, mask)
    return weighted_mean(x, mask, weights)

"""Advantage estimators: GAE (Schulman et al. 2015) and GRPO (Shao et al. 2024, DeepSeekMath), by ``adv_type``.

Each registered estimator maps ``(RolloutBatch, AlgorithmConfig) -> AdvantageResult``; ``compute_advantages``
dispatches on ``cfg.adv_type``, normalises if configured and fills the batch.
Shapes: T steps, B envs, C actions per chunk; level-shaped tensors are ``[T, B]`` (reward_type chunk_level)
or ``[T, B, C]`` (action_level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rlvla_cli.algorithms.aggregation import EPISODE_WEIGHTED, episode_weights
from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.algorithms.levels import (
    CHUNK,
    flatten_action_steps,
    masked_mean,
    masked_var,
    per_action_values,
    reduce_flags,
    reduce_rewards,
    unflatten_action_steps,
)
from rlvla_cli.algorithms.registry import ADVANTAGES
from rlvla_cli.errors import UserError

if TYPE_CHECKING:
    from rlvla_cli.config.algorithm import AlgorithmConfig

GRPO_STD_EPS = 1e-6
BATCH_SCOPE = "batch"  # algorithm.advantage_norm_scope; "minibatch" normalises in update.py instead


@dataclass
class AdvantageResult:
    """advantages / returns: level-shaped ``[T, B]`` or ``[T, B, C]``; loss_mask: bool ``[T, B]``."""

    advantages: torch.Tensor
    returns: torch.Tensor
    loss_mask: torch.Tensor


def generalized_advantage_estimate(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    terminations: torch.Tensor,
    truncations: torch.Tensor,
    bootstrap_values: torch.Tensor | None,
    gamma: float,
    gae_lambda: float,
    bootstrap_type: str = "standard",
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(gamma, lambda) (Schulman et al. 2015, "High-Dimensional Continuous Control Using GAE"), eq. 16.

    Inputs (time-major, flags of step t describe how the transition out of step t ended):
    rewards ``[T, B]``; values ``[T, B]`` = V(s_t); next_value ``[B]`` = V(s_T) after the last step;
    terminations / truncations bool ``[T, B]``; bootstrap_values ``[T, B]`` = V(final observation) of an episode
    truncated at step t (None = 0).

        delta_t = r_t + gamma * [(1 - done_t) V(s_{t+1}) + trunc_t (1 - term_t) V(final_t)] - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},    done_t = term_t or trunc_t

    ``bootstrap_type`` picks the episode ends that add ``gamma * V(final_t)``: ``standard`` truncations only
    (a termination bootstraps nothing; Pardo et al. 2018, "Time Limits in RL"), ``always`` truncations and
    terminations (RLinf's ManiSkill recipes: ``compute_bootstrap_rewards`` in RLinf/RLinf
    rlinf/workers/env/env_worker.py adds ``gamma * V(final obs)`` to the last reward of a chunk that ended an
    episode), ``none`` neither (a time limit counts as terminal: RLinf without auto-reset, where that function
    returns early). With auto-reset s_{t+1} belongs to the next episode, so neither the value nor the advantage
    crosses a done.
    Returns ``(advantages [T, B], returns [T, B] = advantages + values)``. Vectorised over B; the recursion
    runs backwards over T.
    """
    num_steps = rewards.shape[0]
    values, carry, real_next = next_state_values(
        rewards, values, next_value, terminations, truncations, bootstrap_values, bootstrap_type)
    deltas = rewards + gamma * real_next - values
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(num_steps - 1, -1, -1):
        running = deltas[t] + gamma * gae_lambda * carry[t] * running
        advantages[t] = running
    return advantages, advantages + values


def finite_horizon_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    terminations: torch.Tensor,
    truncations: torch.Tensor,
    bootstrap_values: torch.Tensor | None,
    gamma: float,
    gae_lambda: float,
    bootstrap_type: str = "standard",
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE truncated at the rollout's end and renormalised: ManiSkill's ``finite_horizon_gae`` (haosulab/ManiSkill
    examples/baselines/ppo/ppo.py and ppo_cpu.py, default on there).

    Same inputs and outputs as :func:`generalized_advantage_estimate`. GAE's eq. 16 weighs the k-step advantage
    estimates by ``(1 - lambda) lambda^(k-1)``, which assumes infinitely many; when only ``n`` estimates exist
    before the rollout or the episode ends, this weighs them by ``lambda^(k-1) / sum_{j<n} lambda^j`` instead,
    so the last steps of a rollout are not dominated by the one-step estimate. Backwards over T, with
    ``c_t = 1 - done_t`` resetting the sums at an episode end and ``Vn_t = c_t V(s_{t+1}) + V(final_t)`` (the
    final value only at the episode ends ``bootstrap_type`` picks, as in the standard function):

        L_t = 1 + lambda c_t L_{t+1}
        R_t = gamma lambda c_t R_{t+1} + L_t r_t
        W_t = gamma lambda c_t W_{t+1} + gamma Vn_t
        A_t = (R_t + W_t) / L_t - V(s_t)

    Returns ``(advantages [T, B], returns [T, B] = advantages + values)``.
    """
    num_steps = rewards.shape[0]
    values, carry, real_next = next_state_values(
        rewards, values, next_value, terminations, truncations, bootstrap_values, bootstrap_type)
    advantages = torch.empty_like(rewards)
    lam_sum = reward_sum = value_sum = torch.zeros_like(rewards[0])
    for t in range(num_steps - 1, -1, -1):
        lam_sum = 1.0 + gae_lambda * carry[t] * lam_sum
        reward_sum = gamma * gae_lambda * carry[t] * reward_sum + lam_sum * rewards[t]
        value_sum = gamma * gae_lambda * carry[t] * value_sum + gamma * real_next[t]
        advantages[t] = (reward_sum + value_sum) / lam_sum - values[t]
    return advantages, advantages + values


def next_state_values(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    terminations: torch.Tensor,
    truncations: torch.Tensor,
    bootstrap_values: torch.Tensor | None,
    bootstrap_type: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What both GAE variants bootstrap from (shapes as in :func:`generalized_advantage_estimate`), in the
    rewards' dtype: ``values`` ``[T, B]``; ``carry`` ``[T, B]`` = 1 - done_t; ``real_next`` ``[T, B]`` =
    carry_t V(s_{t+1}) + V(final_t) at the episode ends ``bootstrap_type`` picks."""
    values = values.to(rewards.dtype)
    carry = (~(terminations | truncations)).to(rewards.dtype)
    boot = torch.zeros_like(rewards)
    if bootstrap_values is not None:
        boot = bootstrap_values.to(rewards.dtype) * bootstrap_mask(terminations, truncations, bootstrap_type)
    next_values = torch.cat([values[1:], next_value.to(rewards.dtype).unsqueeze(0)], dim=0)
    return values, carry, carry * next_values + boot


def bootstrap_mask(terminations: torch.Tensor, truncations: torch.Tensor, bootstrap_type: str) -> torch.Tensor:
    """float mask (flags' shape): 1 where an episode end adds ``gamma * V(final observation)``."""
    if bootstrap_type == "standard":
        ends = truncations & ~terminations
    elif bootstrap_type == "always":
        ends = truncations | terminations
    elif bootstrap_type == "none":
        ends = torch.zeros_like(truncations)
    else:
        raise ValueError(f"unknown bootstrap_type {bootstrap_type!r}; valid: standard, always, none")
    return ends.to(torch.float32)


@ADVANTAGES.register("gae")
def gae_from_batch(batch: RolloutBatch, cfg: AlgorithmConfig) -> AdvantageResult:
    """GAE over chunks (reward_type chunk_level) or over every executed action (action_level).

    action_level runs the recursion over ``flatten_action_steps`` (``[T * C, B]``), with per-action values when
    the value head has C outputs and the chunk's value repeated otherwise; bootstrap and last values use
    column 0 (the value of that observation).
    """
    if batch.old_values is None or batch.last_values is None:
        raise ValueError("adv_type `gae` needs old_values and last_values in the RolloutBatch (a value head)")
    boot = None if batch.bootstrap_values is None else batch.bootstrap_values[..., 0]
    next_value = batch.last_values[..., 0]
    estimate = finite_horizon_gae if cfg.finite_horizon_gae else generalized_advantage_estimate
    rewards = reduce_rewards(batch.rewards, cfg.reward_type)
    terms = reduce_flags(batch.terminations, cfg.reward_type)
    truncs = reduce_flags(batch.truncations, cfg.reward_type)
    if cfg.reward_type == CHUNK:
        adv, ret = estimate(
            rewards, batch.old_values[..., 0], next_value, terms, truncs, boot, cfg.gamma, cfg.gae_lambda,
            cfg.bootstrap_type,
        )
        return AdvantageResult(adv, ret, batch.loss_mask)
    num_chunks = batch.num_chunks
    values = per_action_values(batch.old_values, num_chunks)
    if boot is not None:
        boot = flatten_action_steps(boot.unsqueeze(-1).expand(-1, -1, num_chunks))
    adv, ret = estimate(
        flatten_action_steps(rewards),
        flatten_action_steps(values),
        next_value,
        flatten_action_steps(terms),
        flatten_action_steps(truncs),
        boot,
        cfg.gamma,
        cfg.gae_lambda,
        cfg.bootstrap_type,
    )
    adv, ret = unflatten_action_steps(adv, num_chunks), unflatten_action_steps(ret, num_chunks)
    return AdvantageResult(adv, ret, batch.loss_mask)


def group_relative_advantages(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """GRPO outcome advantages (Shao et al. 2024, DeepSeekMath, sec. 4.1.2): ``A = (s - mean_g) / (std_g + 1e-6)``.

    scores ``[B]``; consecutive runs of ``group_size`` envs form a group (they share a reset state).
    std is the sample (Bessel-corrected) std of the group. Groups whose scores are all equal, including groups
    of size 1, get advantage exactly 0 (no NaN, no amplified rounding noise). Returns ``[B]``.
    """
    groups = _as_groups(scores, group_size)
    flat_group = groups.amax(1, keepdim=True) == groups.amin(1, keepdim=True)
    centred = groups - groups.mean(1, keepdim=True)
    if group_size > 1:
        advantages = centred / (groups.std(1, keepdim=True) + GRPO_STD_EPS)
    else:
        advantages = torch.zeros_like(centred)
    return torch.where(flat_group, torch.zeros_like(advantages), advantages).reshape(-1)


def group_filter_mask(scores: torch.Tensor, group_size: int, lower: float, upper: float) -> torch.Tensor:
    """bool ``[B]``: True for envs whose group mean score lies in ``[lower, upper]`` (drops all-fail / all-success)."""
    means = _as_groups(scores, group_size).mean(1, keepdim=True)
    keep = (means >= lower) & (means <= upper)
    return keep.expand(-1, group_size).reshape(-1)


def _as_groups(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[B]`` -> ``[B / group_size, group_size]``; ``UserError`` when B is not a multiple of the group size."""
    if scores.shape[0] % group_size:
        raise UserError(
            f"{scores.shape[0]} envs cannot be split into GRPO groups of {group_size}",
            key="algorithm.group_size",
            fix="make the number of envs per training batch a multiple of algorithm.group_size",
        )
    return scores.reshape(-1, group_size).to(torch.float32)


@ADVANTAGES.register("grpo")
def grpo_from_batch(batch: RolloutBatch, cfg: AlgorithmConfig) -> AdvantageResult:
    """GRPO: one score per env (the sum of its masked rewards: the episode return), group-relative
    advantages broadcast to every step of that env; returns are the scores. With ``filter_rewards``, groups
    whose mean is outside ``[rewards_lower_bound, rewards_upper_bound]`` are removed from the loss mask.

    Assumes one episode per env in the rollout (no auto-reset; ``mask_after_first_done`` masks the rest).
    """
    chunk_rewards = reduce_rewards(batch.rewards, CHUNK)
    scores = (chunk_rewards * batch.loss_mask.to(chunk_rewards.dtype)).sum(0)
    adv = group_relative_advantages(scores, cfg.group_size).to(batch.rewards.dtype)
    loss_mask = batch.loss_mask
    if cfg.filter_rewards:
        keep = group_filter_mask(scores, cfg.group_size, cfg.rewards_lower_bound, cfg.rewards_upper_bound)
        loss_mask = loss_mask & keep.unsqueeze(0)
    shape = chunk_rewards.shape if cfg.reward_type == CHUNK else batch.rewards.shape
    per_env = (1, -1, 1) if cfg.reward_type != CHUNK else (1, -1)
    advantages = adv.reshape(per_env).expand(shape).clone()
    returns = scores.to(batch.rewards.dtype).reshape(per_env).expand(shape).clone()
    return AdvantageResult(advantages, returns, loss_mask)


def normalize_advantages(advantages: torch.Tensor, loss_mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(A - mean) / (std + eps)`` with mean / std over masked entries; masked-out entries become 0.

    advantages ``[T, B]`` or ``[T, B, C]``; loss_mask bool ``[T, B]``.
    """
    mean = masked_mean(advantages, loss_mask)
    std = masked_var(advantages, loss_mask).sqrt()
    mask = loss_mask if advantages.dim() == loss_mask.dim() else loss_mask.unsqueeze(-1)
    return torch.where(mask, (advantages - mean) / (std + eps), torch.zeros_like(advantages))


def compute_advantages(batch: RolloutBatch, cfg: AlgorithmConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the ``cfg.adv_type`` estimator, normalise if ``cfg.normalize_advantages`` (here only with
    ``advantage_norm_scope: batch``; ``minibatch`` is done per global batch by ``update_epoch``), fill
    ``batch.advantages``, ``batch.returns``, ``batch.loss_mask`` (GRPO filtering may clear groups) and
    ``batch.loss_weights`` (``cfg.loss_agg: episode_weighted``; None otherwise). Returns (advantages, returns),
    ``[T, B]`` or ``[T, B, C]``. Runs without gradient."""
    batch.validate()
    with torch.no_grad():
        result = ADVANTAGES.get(cfg.adv_type)(batch, cfg)
        advantages = result.advantages
        if cfg.normalize_advantages and cfg.advantage_norm_scope == BATCH_SCOPE:
            advantages = normalize_advantages(advantages, result.loss_mask)
    batch.advantages, batch.returns, batch.loss_mask = advantages, result.returns, result.loss_mask
    # RLinf weighs by the episode's own length (from the dones, before any GRPO filtering): aggregation.py
    dones = batch.terminations | batch.truncations
    batch.loss_weights = episode_weights(dones) if cfg.loss_agg == EPISODE_WEIGHTED else None
    return advantages, result.returns

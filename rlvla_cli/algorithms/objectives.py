"""Per-micro-batch training objectives, registered by ``loss_type``: ``actor_critic`` and ``actor``.

Each maps ``(EvaluateOutput, FlatBatch, AlgorithmConfig, critic_warmup_active)`` to ``(loss, metrics)``:
the loss to minimise (scalar) and detached metrics (names: docs/architecture.md, "Metrics"). Log-probs arrive per
action dimension ``[N, C, A]`` and are reduced to ``cfg.logprob_type``; advantages ``[N]`` / ``[N, C]`` are broadcast.
Policy and value losses aggregate by ``cfg.loss_agg`` (``micro.loss_weights``, see ``aggregation.py``); the
entropy is always a masked mean (as RLinf's worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rlvla_cli.algorithms.batch import FlatBatch
from rlvla_cli.algorithms.levels import broadcast_advantages, reduce_per_level, value_pred_and_target
from rlvla_cli.algorithms.losses import mean_entropy, ppo_policy_loss, value_loss
from rlvla_cli.algorithms.registry import LOSSES
from rlvla_cli.models.base import EvaluateOutput

if TYPE_CHECKING:
    from rlvla_cli.config.algorithm import AlgorithmConfig

Metrics = dict[str, torch.Tensor]


def policy_terms(output: EvaluateOutput, micro: FlatBatch, cfg: AlgorithmConfig) -> tuple[torch.Tensor, Metrics]:
    """PPO clipped policy loss minus the entropy bonus, at the configured levels."""
    logprobs = reduce_per_level(output.logprobs, cfg.logprob_type)
    old_logprobs = reduce_per_level(micro.old_logprobs.to(logprobs.dtype), cfg.logprob_type)
    advantages = broadcast_advantages(micro.advantages.to(logprobs.dtype), logprobs)
    loss, raw = ppo_policy_loss(
        logprobs,
        old_logprobs,
        advantages,
        micro.loss_mask,
        clip_ratio_low=cfg.clip_ratio_low,
        clip_ratio_high=cfg.clip_ratio_high,
        clip_ratio_c=cfg.clip_ratio_c,
        logprob_ratio_clamp=cfg.logprob_ratio_clamp,
        weights=micro.loss_weights,
    )
    metrics = {f"train/actor/{name}": value for name, value in raw.items()}
    metrics["train/actor/policy_loss"] = loss.detach()
    if output.entropy is not None:
        entropy = mean_entropy(output.entropy, micro.loss_mask, cfg.entropy_type)
        metrics["train/actor/entropy_loss"] = entropy.detach()
        if cfg.entropy_bonus:
            loss = loss - cfg.entropy_bonus * entropy
    elif cfg.entropy_bonus:
        raise ValueError("algorithm.entropy_bonus > 0 but the policy's evaluate() returned no entropy")
    return loss, metrics


def value_terms(output: EvaluateOutput, micro: FlatBatch, cfg: AlgorithmConfig) -> tuple[torch.Tensor, Metrics]:
    """Clipped Huber value loss against the returns; also stores ``values``/``returns`` for explained variance."""
    if output.values is None or micro.returns is None:
        raise ValueError("loss_type `actor_critic` needs values from evaluate() and returns in the batch")
    values, returns = value_pred_and_target(output.values, micro.returns)
    old_values = None
    if micro.old_values is not None:
        old_values, _ = value_pred_and_target(micro.old_values, micro.returns)
    loss, raw = value_loss(
        values, old_values, returns, micro.loss_mask, value_clip=cfg.value_clip, huber_delta=cfg.huber_delta,
        weights=micro.loss_weights,
    )
    metrics = {f"train/critic/{name}": value for name, value in raw.items()}
    metrics["train/critic/value_loss"] = loss.detach()
    return loss, metrics


@LOSSES.register("actor_critic")
def actor_critic_objective(
    output: EvaluateOutput, micro: FlatBatch, cfg: AlgorithmConfig, critic_warmup_active: bool = False
) -> tuple[torch.Tensor, Metrics]:
    """``policy_loss - entropy_bonus * H + value_loss_coef * value_loss``; while the critic warms up only the
    value term is optimised (the policy terms are still reported)."""
    policy_loss, metrics = policy_terms(output, micro, cfg)
    critic_loss, critic_metrics = value_terms(output, micro, cfg)
    metrics.update(critic_metrics)
    if critic_warmup_active:
        return cfg.value_loss_coef * critic_loss, metrics
    return policy_loss + cfg.value_loss_coef * critic_loss, metrics


@LOSSES.register("actor")
def actor_objective(
    output: EvaluateOutput, micro: FlatBatch, cfg: AlgorithmConfig, critic_warmup_active: bool = False
) -> tuple[torch.Tensor, Metrics]:
    """``policy_loss - entropy_bonus * H`` (GRPO, or PPO without a critic); there is no critic to warm up."""
    return policy_terms(output, micro, cfg)

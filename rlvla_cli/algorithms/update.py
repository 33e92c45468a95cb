"""One PPO / GRPO training pass over a rollout batch: micro-batches, gradient accumulation, skips.

The optimizer step itself belongs to a ``Stepper``; the one implementation is the DeepSpeed trainer
(``runtime/trainer.py: Trainer``, which also runs on the CPU). Stepper contract:

- ``backward(loss)``: called once per micro-batch whose loss is finite, with the loss already divided by the
  number of micro-batches in its global batch.
- ``step(boundary, skip) -> StepResult | None``: called after every micro-batch; ``boundary`` marks the last
  micro-batch of a global batch (apply the update there: clip, skip when non-finite, step), ``skip`` that some
  loss of this global batch was NaN/inf (that micro-batch was not backpropagated). Returns a ``StepResult`` at
  boundaries, None elsewhere.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from rlvla_cli.algorithms.batch import FlatBatch, RolloutBatch, split_indices
from rlvla_cli.algorithms.levels import value_pred_and_target
from rlvla_cli.algorithms.losses import explained_variance
from rlvla_cli.algorithms.registry import LOSSES
from rlvla_cli.models.base import VLAPolicy

if TYPE_CHECKING:
    from rlvla_cli.config.algorithm import AlgorithmConfig

MINIBATCH_SCOPE = "minibatch"  # algorithm.advantage_norm_scope


@dataclass
class StepResult:
    """Outcome of one optimizer step: the gradient norm before clipping and whether the step was skipped."""

    grad_norm: float
    skipped: bool


class Stepper(Protocol):
    """Owner of the optimizer step (see the module docstring for the contract)."""

    def backward(self, loss: torch.Tensor) -> None: ...

    def step(self, boundary: bool, skip: bool) -> StepResult | None: ...


class _MetricMeans:
    """Running means of scalar metrics, plus (value, return, mask) pieces for the explained variance."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.value_pieces: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def add(self, name: str, value: float | torch.Tensor) -> None:
        value = float(value)
        if math.isfinite(value):
            self.sums[name] += value
            self.counts[name] += 1

    def means(self) -> dict[str, float]:
        return {name: self.sums[name] / self.counts[name] for name in self.sums}


def update_epoch(
    policy: VLAPolicy,
    batch: RolloutBatch,
    stepper: Stepper,
    cfg: AlgorithmConfig,
    *,
    micro_batch_size: int,
    global_batch_size: int,
    critic_warmup_active: bool = False,
    generator: torch.Generator | None = None,
    data_parallel_size: int = 1,
) -> dict[str, float]:
    """One pass over ``batch`` (advantages filled by ``compute_advantages``): ``T * B`` samples, shuffled if
    ``cfg.shuffle_micro_batches``, split into global batches of ``global_batch_size / data_parallel_size``
    samples on this rank, each into micro-batches of ``micro_batch_size`` whose gradients accumulate into one
    optimizer step. ``critic_warmup_active``: only the value loss is optimised. A NaN/inf loss or gradient
    skips that step (``train/skipped_steps``). ``cfg.advantage_norm_scope: minibatch`` normalises the advantages
    over each global batch (this rank's share) before its micro-batches; ``cfg.target_kl`` ends the pass before
    the first global batch whose first micro-batch has an approximate KL above it (decided over all ranks), and
    ``train/kl_stopped`` is then 1. Returns mean metrics under the names of docs/architecture.md ("Metrics").
    """
    flat = batch.flatten()
    per_rank_global = max(1, global_batch_size // max(1, data_parallel_size))
    plan = split_indices(len(flat), per_rank_global, micro_batch_size, cfg.shuffle_micro_batches, generator)
    objective = LOSSES.get(cfg.loss_type)
    device = next(policy.parameters()).device
    stats = _MetricMeans()
    skipped_steps = nonfinite_losses = 0
    raw_advantages = flat.advantages
    per_minibatch = cfg.normalize_advantages and cfg.advantage_norm_scope == MINIBATCH_SCOPE
    kl_stopped = False
    for micro_batches in plan:
        if per_minibatch:
            flat.advantages = minibatch_normalized(raw_advantages, flat.loss_mask, torch.cat(micro_batches))
        skip = False
        for index, idx in enumerate(micro_batches):
            loss, metrics, output, micro = _forward(policy, flat.select(idx).to(device), cfg, objective,
                                                    critic_warmup_active)
            if index == 0 and cfg.target_kl is not None:
                kl = float(metrics.get("train/actor/approx_kl", 0.0))
                kl_stopped = _any_rank(kl > cfg.target_kl, data_parallel_size, device)
                if kl_stopped:
                    break
            finite = bool(torch.isfinite(loss.detach()))
            if finite:
                stepper.backward(loss / len(micro_batches))
                _record(stats, metrics, output, micro)
            nonfinite_losses += int(not finite)
            skip = skip or not finite
            result = stepper.step(index == len(micro_batches) - 1, skip)
        if kl_stopped:
            break
        if result is not None:
            skipped_steps += int(result.skipped)
            stats.add("train/actor/grad_norm", result.grad_norm)
    flat.advantages = raw_advantages
    metrics = stats.means()
    metrics["train/skipped_steps"] = float(skipped_steps)
    metrics["train/nonfinite_losses"] = float(nonfinite_losses)
    metrics["train/kl_stopped"] = float(kl_stopped)
    if stats.value_pieces:
        values, returns, masks = (torch.cat(piece) for piece in zip(*stats.value_pieces, strict=True))
        metrics["train/critic/explained_variance"] = explained_variance(values, returns, masks)
    return metrics


def minibatch_normalized(advantages: torch.Tensor, loss_mask: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """A copy of ``advantages`` (``[N]`` or ``[N, C]``) whose rows ``idx`` (int64 ``[n]``) are normalised over
    those rows' masked entries, ``(A - mean) / (std + 1e-8)`` with the Bessel-corrected std, masked-out rows 0;
    other rows are unchanged. This is ManiSkill's per-minibatch ``norm_adv`` (``mb_advantages.std()`` in
    haosulab/ManiSkill examples/baselines/ppo/ppo_cpu.py); loss_mask bool ``[N]``."""
    selected, mask = advantages[idx], loss_mask[idx]
    mask = mask if selected.dim() == mask.dim() else mask.unsqueeze(-1).expand_as(selected)
    kept = selected[mask]
    mean = kept.mean() if kept.numel() else selected.new_zeros(())
    std = kept.std() if kept.numel() > 1 else selected.new_zeros(())
    out = advantages.clone()
    out[idx] = torch.where(mask, (selected - mean) / (std + 1e-8), torch.zeros_like(selected))
    return out


def _any_rank(flag: bool, data_parallel_size: int, device: torch.device) -> bool:
    """``flag`` OR-ed over the trainer ranks (every rank must stop at the same optimizer step)."""
    import torch.distributed as dist

    if data_parallel_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def _forward(
    policy: VLAPolicy, micro: FlatBatch, cfg: AlgorithmConfig, objective: Callable, critic_warmup_active: bool
) -> tuple[torch.Tensor, dict, object, FlatBatch]:
    """Forward of one micro-batch: ``(loss, metrics, policy output, micro)``; nothing backpropagated yet."""
    output = policy.evaluate(micro.forward_inputs, compute_entropy=True, compute_values=cfg.trains_critic)
    loss, metrics = objective(output, micro, cfg, critic_warmup_active=critic_warmup_active)
    return loss, metrics, output, micro


def _record(stats: _MetricMeans, metrics: dict, output, micro: FlatBatch) -> None:
    """Add one backpropagated micro-batch's metrics and (value, return, mask) pieces to ``stats``."""
    for name, value in metrics.items():
        stats.add(name, value)
    if output.values is not None and micro.returns is not None:
        values, returns = value_pred_and_target(output.values.detach(), micro.returns)
        stats.value_pieces.append((values.float().cpu(), returns.float().cpu(), micro.loss_mask.cpu()))


def train_on_batch(
    policy: VLAPolicy, batch: RolloutBatch, stepper: Stepper, cfg: AlgorithmConfig, **kwargs
) -> dict[str, float]:
    """``cfg.update_epoch`` passes of ``update_epoch`` (same keyword arguments); metrics averaged over passes,
    ``train/skipped_steps`` summed. A pass stopped by ``cfg.target_kl`` ends the training step (ManiSkill's PPO
    leaves both loops); ``train/early_stopped_epochs`` counts the passes cut short or not run."""
    per_epoch, stopped = [], False
    for _ in range(cfg.update_epoch):
        metrics = update_epoch(policy, batch, stepper, cfg, **kwargs)
        stopped = bool(metrics.pop("train/kl_stopped"))
        per_epoch.append(metrics)
        if stopped:
            break
    merged: dict[str, float] = {}
    for name in {key for metrics in per_epoch for key in metrics}:
        values = [metrics[name] for metrics in per_epoch if name in metrics]
        merged[name] = sum(values) if name == "train/skipped_steps" else sum(values) / len(values)
    completed = len(per_epoch) - int(stopped)
    merged["train/early_stopped_epochs"] = float(cfg.update_epoch - completed)
    return merged

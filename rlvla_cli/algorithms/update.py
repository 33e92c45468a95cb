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
    skips that step (``train/skipped_steps``). Returns mean metrics under the names of docs/architecture.md ("Metrics").
    """
    flat = batch.flatten()
    per_rank_global = max(1, global_batch_size // max(1, data_parallel_size))
    plan = split_indices(len(flat), per_rank_global, micro_batch_size, cfg.shuffle_micro_batches, generator)
    objective = LOSSES.get(cfg.loss_type)
    device = next(policy.parameters()).device
    stats = _MetricMeans()
    skipped_steps = nonfinite_losses = 0
    for micro_batches in plan:
        skip = False
        for index, idx in enumerate(micro_batches):
            finite = _micro_step(
                policy, flat.select(idx).to(device), cfg, objective, critic_warmup_active, stepper,
                len(micro_batches), stats,
            )  # fmt: skip
            nonfinite_losses += int(not finite)
            skip = skip or not finite
            result = stepper.step(index == len(micro_batches) - 1, skip)
        if result is not None:
            skipped_steps += int(result.skipped)
            stats.add("train/actor/grad_norm", result.grad_norm)
    metrics = stats.means()
    metrics["train/skipped_steps"] = float(skipped_steps)
    metrics["train/nonfinite_losses"] = float(nonfinite_losses)
    if stats.value_pieces:
        values, returns, masks = (torch.cat(piece) for piece in zip(*stats.value_pieces, strict=True))
        metrics["train/critic/explained_variance"] = explained_variance(values, returns, masks)
    return metrics


def _micro_step(
    policy: VLAPolicy,
    micro: FlatBatch,
    cfg: AlgorithmConfig,
    objective: Callable,
    critic_warmup_active: bool,
    stepper: Stepper,
    accumulation: int,
    stats: _MetricMeans,
) -> bool:
    """Forward + backward of one micro-batch; returns False when its loss is not finite (nothing backpropagated)."""
    output = policy.evaluate(micro.forward_inputs, compute_entropy=True, compute_values=cfg.trains_critic)
    loss, metrics = objective(output, micro, cfg, critic_warmup_active=critic_warmup_active)
    if not bool(torch.isfinite(loss.detach())):
        return False
    stepper.backward(loss / accumulation)
    for name, value in metrics.items():
        stats.add(name, value)
    if output.values is not None and micro.returns is not None:
        values, returns = value_pred_and_target(output.values.detach(), micro.returns)
        stats.value_pieces.append((values.float().cpu(), returns.float().cpu(), micro.loss_mask.cpu()))
    return True


def train_on_batch(
    policy: VLAPolicy, batch: RolloutBatch, stepper: Stepper, cfg: AlgorithmConfig, **kwargs
) -> dict[str, float]:
    """``cfg.update_epoch`` passes of ``update_epoch`` (same keyword arguments); metrics averaged over passes,
    ``train/skipped_steps`` summed."""
    per_epoch = [update_epoch(policy, batch, stepper, cfg, **kwargs) for _ in range(cfg.update_epoch)]
    merged: dict[str, float] = {}
    for name in {key for metrics in per_epoch for key in metrics}:
        values = [metrics[name] for metrics in per_epoch if name in metrics]
        merged[name] = sum(values) if name == "train/skipped_steps" else sum(values) / len(values)
    return merged

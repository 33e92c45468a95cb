"""One PPO / GRPO training pass over a rollout batch: micro-batches, gradient accumulation, clipping, skips.

The same code drives a plain torch optimizer (the default hooks, ``TorchStepper``) and a DeepSpeed engine
(``deepspeed_hooks(engine)``). Hook contract:

- ``backward(loss)``: called once per micro-batch whose loss is finite, with the loss already divided by the
  number of micro-batches in its global batch (DeepSpeed: ``engine.backward(loss, scale_wrt_gas=False)``).
- ``step(boundary, skip) -> StepResult | None``: called after every micro-batch; ``boundary`` marks the last
  micro-batch of a global batch (apply the update there), ``skip`` that some loss of this global batch was
  NaN/inf (that micro-batch was not backpropagated). Returns a ``StepResult`` at boundaries, None elsewhere.
  DeepSpeed counts micro-steps itself, so its hook calls ``engine.step()`` every time; it cannot drop an
  accumulated step, so with DeepSpeed a non-finite micro-batch is left out and the rest still updates.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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


BackwardHook = Callable[[torch.Tensor], None]
StepHook = Callable[[bool, bool], "StepResult | None"]


def build_optimizer(
    policy: VLAPolicy,
    lr: float,
    value_lr: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW with two parameter groups: ``policy`` (``policy.policy_parameters()``, ``lr``) and ``value_head``
    (``policy.value_head_parameters()``, ``value_lr``, default ``lr``). Empty groups are left out."""
    groups = []
    policy_params = [p for p in policy.policy_parameters() if p.requires_grad]
    value_params = [p for p in policy.value_head_parameters() if p.requires_grad]
    if policy_params:
        groups.append({"params": policy_params, "lr": lr, "name": "policy"})
    if value_params:
        groups.append({"params": value_params, "lr": lr if value_lr is None else value_lr, "name": "value_head"})
    if not groups:
        raise ValueError("the policy has no trainable parameters (check LoRA / freezing settings)")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)


class TorchStepper:
    """The default ``step`` hook: at a boundary, clip the gradient norm to ``clip_grad`` (None / <= 0: measure
    only), skip on request or on a non-finite norm, else ``optimizer.step()``; always clear gradients."""

    def __init__(self, optimizer: torch.optim.Optimizer, clip_grad: float | None):
        self.optimizer = optimizer
        self.max_norm = clip_grad if clip_grad and clip_grad > 0 else math.inf

    def __call__(self, boundary: bool, skip: bool) -> StepResult | None:
        if not boundary:
            return None
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if skip:
            self.optimizer.zero_grad(set_to_none=True)
            return StepResult(math.nan, True)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_norm)) if params else 0.0
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return StepResult(grad_norm, True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(grad_norm, False)


def deepspeed_hooks(engine) -> tuple[BackwardHook, StepHook]:
    """``(backward, step)`` hooks for a DeepSpeed engine configured with ``gradient_accumulation_steps`` equal
    to the micro-batches per global batch (``global / (micro * data-parallel size)``) and its own
    ``gradient_clipping``; every global batch must then hold exactly that many micro-batches (checked at
    each step). The grad norm comes from the engine (ZeRO 1/2/3) or, where it reports none (stage 0),
    from the parameters' gradients just before the step; a step the engine did not apply (fp16 overflow)
    counts as skipped."""

    def backward(loss: torch.Tensor) -> None:
        engine.backward(loss, scale_wrt_gas=False)  # update_epoch already divided by the accumulation steps

    def step(boundary: bool, skip: bool) -> StepResult | None:
        if boundary != engine.is_gradient_accumulation_boundary():
            raise ValueError(
                "DeepSpeed's gradient_accumulation_steps does not match update_epoch's micro-batches per global "
                "batch: the samples per rank (T * B) must be a multiple of global_batch_size / data-parallel "
                "size, and that a multiple of micro_batch_size"
            )
        local_norm = _grad_norm(engine.module.parameters()) if boundary else None
        engine.step()
        if not boundary:
            return None
        engine_norm = engine.get_global_grad_norm()
        grad_norm = float(engine_norm) if engine_norm is not None else local_norm
        return StepResult(math.nan if grad_norm is None else grad_norm, not engine.was_step_applied())

    return backward, step


def _grad_norm(params) -> float | None:
    """Global 2-norm of the gradients present on ``params`` (None when no parameter holds one)."""
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else None


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
    optimizer: torch.optim.Optimizer,
    cfg: AlgorithmConfig,
    *,
    micro_batch_size: int,
    global_batch_size: int,
    clip_grad: float | None,
    critic_warmup_active: bool = False,
    backward: BackwardHook | None = None,
    step: StepHook | None = None,
    generator: torch.Generator | None = None,
    data_parallel_size: int = 1,
) -> dict[str, float]:
    """One pass over ``batch`` (advantages filled by ``compute_advantages``): ``T * B`` samples, shuffled if
    ``cfg.shuffle_micro_batches``, split into global batches of ``global_batch_size / data_parallel_size``
    samples on this rank, each into micro-batches of ``micro_batch_size`` whose gradients accumulate into one
    optimizer step. ``critic_warmup_active``: only the value loss is optimised. A NaN/inf loss or gradient
    skips that step (``train/skipped_steps``). Returns mean metrics under DESIGN.md's names.
    """
    flat = batch.flatten()
    per_rank_global = max(1, global_batch_size // max(1, data_parallel_size))
    plan = split_indices(len(flat), per_rank_global, micro_batch_size, cfg.shuffle_micro_batches, generator)
    backward = backward or (lambda loss: loss.backward())
    step = step or TorchStepper(optimizer, clip_grad)
    objective = LOSSES.get(cfg.loss_type)
    device = next(policy.parameters()).device
    stats = _MetricMeans()
    skipped_steps = nonfinite_losses = 0
    for micro_batches in plan:
        skip = False
        for index, idx in enumerate(micro_batches):
            finite = _micro_step(
                policy, flat.select(idx).to(device), cfg, objective, critic_warmup_active, backward,
                len(micro_batches), stats,
            )  # fmt: skip
            nonfinite_losses += int(not finite)
            skip = skip or not finite
            result = step(index == len(micro_batches) - 1, skip)
        if result is not None:
            skipped_steps += int(result.skipped)
            stats.add("train/actor/grad_norm", result.grad_norm)
    metrics = stats.means()
    metrics["train/skipped_steps"] = float(skipped_steps)
    metrics["train/nonfinite_losses"] = float(nonfinite_losses)
    metrics.update(_learning_rates(optimizer))
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
    backward: BackwardHook,
    accumulation: int,
    stats: _MetricMeans,
) -> bool:
    """Forward + backward of one micro-batch; returns False when its loss is not finite (nothing backpropagated)."""
    output = policy.evaluate(micro.forward_inputs, compute_entropy=True, compute_values=cfg.loss_type == "actor_critic")
    loss, metrics = objective(output, micro, cfg, critic_warmup_active=critic_warmup_active)
    if not bool(torch.isfinite(loss.detach())):
        return False
    backward(loss / accumulation)
    for name, value in metrics.items():
        stats.add(name, value)
    if output.values is not None and micro.returns is not None:
        values, returns = value_pred_and_target(output.values.detach(), micro.returns)
        stats.value_pieces.append((values.float().cpu(), returns.float().cpu(), micro.loss_mask.cpu()))
    return True


def _learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``train/actor/lr`` from the first non-value group, ``train/critic/lr`` from the ``value_head`` group."""
    rates: dict[str, float] = {}
    for group in optimizer.param_groups:
        key = "train/critic/lr" if group.get("name") == "value_head" else "train/actor/lr"
        rates.setdefault(key, float(group["lr"]))
    return rates


def train_on_batch(
    policy: VLAPolicy, batch: RolloutBatch, optimizer: torch.optim.Optimizer, cfg: AlgorithmConfig, **kwargs
) -> dict[str, float]:
    """``cfg.update_epoch`` passes of ``update_epoch`` (same keyword arguments); metrics averaged over passes,
    ``train/skipped_steps`` summed."""
    per_epoch = [update_epoch(policy, batch, optimizer, cfg, **kwargs) for _ in range(cfg.update_epoch)]
    merged: dict[str, float] = {}
    for name in {key for metrics in per_epoch for key in metrics}:
        values = [metrics[name] for metrics in per_epoch if name in metrics]
        merged[name] = sum(values) if name == "train/skipped_steps" else sum(values) / len(values)
    return merged

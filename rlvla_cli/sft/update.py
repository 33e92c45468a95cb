"""One behaviour-cloning optimizer step, in the trainer's update-function shape (the same ``Stepper`` as PPO)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.algorithms.update import Stepper
from rlvla_cli.sft.data import DemoBatch

if TYPE_CHECKING:
    from rlvla_cli.config.algorithm import AlgorithmConfig


def sft_update(
    policy: Any,
    batch: DemoBatch,
    stepper: Stepper,
    algo_cfg: AlgorithmConfig,
    *,
    micro_batch_size: int,
    global_batch_size: int,
    data_parallel_size: int = 1,
    critic_warmup_active: bool = False,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Split ``batch`` (this rank's share of one global batch) into micro-batches, accumulate the gradient of
    ``policy.supervised_loss`` through ``stepper.backward`` and apply one ``stepper.step`` at the end (the
    trainer clips, and skips a step whose loss or gradient is not finite)."""
    del algo_cfg, global_batch_size, data_parallel_size, critic_warmup_active, generator  # the PPO-only arguments
    micro = list(torch.arange(len(batch)).split(micro_batch_size))
    losses, skip = [], False
    for index in micro:
        part = batch.select(index)
        loss = policy.supervised_loss(part.observations(), part.actions, part.mask)
        if not torch.isfinite(loss):
            skip = True
            continue
        stepper.backward(loss / len(micro))
        losses.append(float(loss.detach()))
    result = stepper.step(True, skip)
    return {
        "train/sft/loss": sum(losses) / max(1, len(losses)),
        "train/actor/grad_norm": result.grad_norm,
        "train/skipped_steps": float(result.skipped),
    }

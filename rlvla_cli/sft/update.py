"""One behaviour-cloning optimizer step, in the trainer's update-function shape (same DeepSpeed hooks as PPO)."""

from __future__ import annotations

from typing import Any

import torch

from rlvla_cli.sft.data import DemoBatch


def sft_update(
    policy: Any,
    batch: DemoBatch,
    optimizer: Any,
    algo_cfg: Any,
    *,
    micro_batch_size: int,
    global_batch_size: int,
    data_parallel_size: int = 1,
    clip_grad: float | None = None,
    critic_warmup_active: bool = False,
    backward=None,
    step=None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Split ``batch`` (this rank's share of one global batch) into micro-batches, accumulate the gradient of
    ``policy.supervised_loss`` and apply one optimizer step at the end. ``backward(loss)`` / ``step(boundary,
    skip)`` are the trainer's DeepSpeed hooks; without them plain torch autograd and ``optimizer.step`` run."""
    del algo_cfg, global_batch_size, data_parallel_size, critic_warmup_active, generator  # the PPO-only arguments
    backward = backward or (lambda loss: loss.backward())
    order = torch.arange(len(batch))
    micro = list(order.split(micro_batch_size))
    losses, skip = [], False
    for index in micro:
        part = batch.select(index)
        loss = policy.supervised_loss(part.observations(), part.actions, part.mask)
        if not torch.isfinite(loss):
            skip = True
            continue
        backward(loss / len(micro))
        losses.append(float(loss.detach()))
    if step is not None:
        result = step(True, skip)
        grad_norm, skipped = result.grad_norm, result.skipped
    else:
        params = [p for p in policy.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip_grad or float("inf")))
        skipped = skip or not torch.isfinite(torch.tensor(grad_norm))
        if not skipped:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {
        "train/sft/loss": sum(losses) / max(1, len(losses)),
        "train/actor/grad_norm": grad_norm,
        "train/skipped_steps": float(skipped),
    }

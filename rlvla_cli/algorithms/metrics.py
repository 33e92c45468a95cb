"""Rollout statistics under RLinf's metric names (``rollout/...``), computed over the loss mask."""

from __future__ import annotations

import torch

from rlvla_cli.algorithms.batch import RolloutBatch


def rollout_metrics(batch: RolloutBatch) -> dict[str, float]:
    """``rollout/rewards`` (mean reward per chunk step), ``rollout/advantages_{mean,max,min}`` and
    ``rollout/returns_{mean,max,min}`` over masked steps of a batch whose advantages are computed."""
    mask = batch.loss_mask
    metrics = {"rollout/rewards": _masked_stats(batch.rewards.sum(-1), mask)[0]}
    for name in ("advantages", "returns"):
        tensor = getattr(batch, name)
        if tensor is None:
            continue
        mean, high, low = _masked_stats(tensor, mask)
        metrics.update({f"rollout/{name}_mean": mean, f"rollout/{name}_max": high, f"rollout/{name}_min": low})
    return metrics


def _masked_stats(x: torch.Tensor, mask: torch.Tensor) -> tuple[float, float, float]:
    """(mean, max, min) of ``x [T, B, ...]`` over entries where ``mask [T, B]``; zeros when nothing is masked in."""
    selected = x[mask].float()
    if selected.numel() == 0:
        return 0.0, 0.0, 0.0
    return float(selected.mean()), float(selected.max()), float(selected.min())

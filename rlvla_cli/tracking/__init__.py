"""Metric tracking: metrics.jsonl, TensorBoard, SwanLab, W&B and the rich console."""

from rlvla_cli.tracking.tracker import Tracker, build_tracker

__all__ = ["Tracker", "build_tracker"]

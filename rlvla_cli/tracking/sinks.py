"""Metric sinks: metrics.jsonl (always), TensorBoard, SwanLab, Weights & Biases.

Every sink takes flat ``{name: float}`` dicts with the metric names of DESIGN.md ("Metrics", RLinf's names:
``env/success_once``, ``train/actor/policy_loss``, ``time/step``, ...) and a global step.
Backends with optional dependencies are imported lazily so a missing extra only fails when it is asked for.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol

from rlvla_cli.errors import UserError


class MetricSink(Protocol):
    """Anything that records scalar metrics at a step."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN/inf: store them as null so every line parses with a strict reader."""
    return value if math.isfinite(value) else None


class JsonlSink:
    """One JSON object per logged step in ``<run_dir>/metrics.jsonl``: ``{"step", "wall_time", **metrics}``.

    Opened in append mode so a resumed run continues the same file; each line is flushed at once.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, metrics: dict[str, float], step: int) -> None:
        record: dict[str, Any] = {"step": int(step), "wall_time": time.time()}
        record.update({k: _finite_or_none(float(v)) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class TensorBoardSink:
    """Scalars into ``<run_dir>/tensorboard`` via ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, log_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(name, float(value), global_step=int(step))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class SwanLabSink:
    """SwanLab run. ``mode`` is always passed (``offline`` / ``disabled`` need no network; without a mode and
    without a TTY swanlab raises)."""

    def __init__(self, log_dir: str | Path, project: str, experiment: str, mode: str, config: dict | None):
        try:
            import swanlab
        except ImportError as err:  # pragma: no cover - swanlab is a core dependency
            raise UserError(
                "the `swanlab` logger backend is enabled but the swanlab package is not installed",
                key="runner.logger.logger_backends",
                fix="pip install swanlab, or remove swanlab from runner.logger.logger_backends",
            ) from err
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self._run = swanlab.init(
            project=project, name=experiment, mode=mode, log_dir=str(log_dir), config=config or {}, reinit=True
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log({k: float(v) for k, v in metrics.items()}, step=int(step))

    def close(self) -> None:
        self._run.finish()


class WandbSink:
    """Weights & Biases run (the optional ``wandb`` extra). Honours ``WANDB_MODE`` (e.g. ``offline``)."""

    def __init__(self, log_dir: str | Path, project: str, experiment: str, config: dict | None):
        try:
            import wandb
        except ImportError as err:
            raise UserError(
                "the `wandb` logger backend is enabled but the wandb package is not installed",
                key="runner.logger.logger_backends",
                fix="pip install 'rlvla[wandb]' (or pip install wandb), or remove wandb from the backends",
            ) from err
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=project, name=experiment, dir=str(log_dir), config=config or {},
            mode=os.environ.get("WANDB_MODE", "online"),
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log({k: float(v) for k, v in metrics.items()}, step=int(step))

    def close(self) -> None:
        self._run.finish()


BACKENDS = ("tensorboard", "swanlab", "wandb")


def build_sink(
    backend: str, run_dir: Path, project: str, experiment: str, swanlab_mode: str, config: dict | None
) -> MetricSink:
    """Create the sink for one ``runner.logger.logger_backends`` entry (``metrics.jsonl`` is added separately)."""
    if backend == "tensorboard":
        return TensorBoardSink(run_dir / "tensorboard")
    if backend == "swanlab":
        return SwanLabSink(run_dir / "swanlab", project, experiment, swanlab_mode, config)
    if backend == "wandb":
        return WandbSink(run_dir / "wandb", project, experiment, config)
    raise UserError(
        f"unknown logger backend {backend!r}",
        key="runner.logger.logger_backends",
        fix=f"use any of {', '.join(BACKENDS)}",
    )

"""The run's metric tracker: fans one metrics dict out to metrics.jsonl, the configured backends and the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlvla_cli.tracking.console import ConsoleProgress
from rlvla_cli.tracking.sinks import JsonlSink, MetricSink, build_sink


def to_float_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Scalars only: python numbers and 0-d / 1-element tensors become floats; anything else is dropped."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if hasattr(value, "numel") and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)):
            out[name] = float(value)
    return out


class Tracker:
    """``log(metrics, step)`` writes every sink; ``close()`` finishes them (idempotent).

    run_dir: the run directory (``metrics.jsonl`` and one subfolder per backend go there).
    backends: names from ``runner.logger.logger_backends`` (tensorboard, swanlab, wandb).
    """

    def __init__(
        self,
        run_dir: str | Path,
        backends: list[str] | tuple[str, ...] = ("tensorboard",),
        project: str = "rlvla",
        experiment: str = "run",
        swanlab_mode: str = "offline",
        config: dict | None = None,
        total_steps: int = 0,
        start_step: int = 0,
        console: bool = True,
        summary_every: int = 10,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sinks: list[MetricSink] = [JsonlSink(self.run_dir / "metrics.jsonl")]
        try:
            for backend in dict.fromkeys(backends):  # de-duplicated, order kept
                self.sinks.append(build_sink(backend, self.run_dir, project, experiment, swanlab_mode, config))
        except BaseException:
            self.close()
            raise
        self.console = ConsoleProgress(total_steps, start_step, summary_every, enabled=console)
        self._latest: dict[str, float] = {}
        self._closed = False

    def log(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        """Record ``metrics`` at ``step`` everywhere; returns the float dict that was written."""
        values = to_float_metrics(metrics)
        for sink in self.sinks:
            sink.log(values, step)
        self._latest.update(values)  # the live line keeps train metrics when an eval-only record arrives
        self.console.update(dict(self._latest), step)
        return values

    def print(self, message: str) -> None:
        self.console.print(message)

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        if hasattr(self, "console"):
            self.console.close()
        for sink in self.sinks:
            sink.close()


def build_tracker(logger_cfg: Any, run_dir: str | Path, config: dict | None, total_steps: int, start_step: int = 0,
                  console: bool = True) -> Tracker:
    """Tracker from ``runner.logger`` (fields: project_name, experiment_name, logger_backends, swanlab_mode)."""
    return Tracker(
        run_dir,
        backends=list(getattr(logger_cfg, "logger_backends", ["tensorboard"]) or []),
        project=getattr(logger_cfg, "project_name", "rlvla"),
        experiment=getattr(logger_cfg, "experiment_name", "run"),
        swanlab_mode=getattr(logger_cfg, "swanlab_mode", "offline"),
        config=config,
        total_steps=total_steps,
        start_step=start_step,
        console=console,
    )

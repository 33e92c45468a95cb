"""Rich console output of a run: a progress bar with ETA, a live line of key metrics, a summary table."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# Shown on the live line, in this order, with their short labels.
LIVE_METRICS = (
    ("env/success_once", "succ"),
    ("eval/success_once", "eval"),
    ("env/return", "ret"),
    ("train/actor/policy_loss", "pi"),
    ("train/critic/value_loss", "vf"),
    ("train/actor/approx_kl", "kl"),
    ("perf/env_steps_per_s", "sps"),
    ("time/step", "s/it"),
)
# Prefixes grouped into the periodic summary table.
SUMMARY_PREFIXES = ("env/", "eval/", "rollout/", "train/", "time/", "perf/")


def format_value(value: float) -> str:
    """Compact number for the terminal: 4 significant digits, scientific for tiny / huge magnitudes."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4g}"


def live_line(metrics: dict[str, float]) -> str:
    """``succ 0.5 | ret 1.2 | ...`` of the LIVE_METRICS present in ``metrics``."""
    parts = [f"{label} {format_value(metrics[name])}" for name, label in LIVE_METRICS if name in metrics]
    return " | ".join(parts)


def summary_table(metrics: dict[str, float], step: int) -> Table:
    """A two-column table of every metric, sorted by name, grouped by the DESIGN.md prefixes."""
    table = Table(title=f"step {step}", show_header=True, header_style="bold", min_width=50)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for prefix in SUMMARY_PREFIXES:
        for name in sorted(k for k in metrics if k.startswith(prefix)):
            table.add_row(name, format_value(metrics[name]))
    for name in sorted(k for k in metrics if not k.startswith(SUMMARY_PREFIXES)):
        table.add_row(name, format_value(metrics[name]))
    return table


class ConsoleProgress:
    """Progress bar over the run's steps (ETA from rich) plus a live metric line; every ``summary_every``
    steps a full table is printed above the bar. ``enabled=False`` prints nothing (tests, non-zero ranks)."""

    def __init__(self, total_steps: int, start_step: int = 0, summary_every: int = 10, enabled: bool = True,
                 console: Console | None = None):
        self.enabled = enabled
        self.summary_every = max(1, summary_every)
        self.console = console or Console()
        self._progress: Progress | None = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[bold blue]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[live]}"),
            console=self.console,
            transient=False,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=start_step, live="")
        self._progress.start()

    def update(self, metrics: dict[str, float], step: int) -> None:
        """Advance the bar to ``step`` and refresh the live line; print a summary every ``summary_every`` steps."""
        if self._progress is None:
            return
        self._progress.update(self._task, completed=step, live=live_line(metrics))
        if step % self.summary_every == 0:
            self._progress.console.print(summary_table(metrics, step))

    def print(self, message: str) -> None:
        """A line above the bar (eval results, checkpoints, warnings)."""
        if self.enabled:
            self.console.print(message, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

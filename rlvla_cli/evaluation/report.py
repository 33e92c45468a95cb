"""Evaluation results: Wilson intervals, per-task rows, the rich table, the JSON report and tracker metrics.

Pure data and formatting; nothing here runs an environment. Success is ``success_once`` (the episode succeeded
at some step), RLinf's recommended evaluation metric.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

Z_95 = 1.959963984540054  # standard normal quantile at 0.975
REPORT_VERSION = 1


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927; Brown, Cai & DasGupta 2001).

    centre = (p + z^2 / 2n) / (1 + z^2 / n); half = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n).
    Unlike p +- z sqrt(p (1 - p) / n) it stays inside [0, 1] and is not empty at 0 or n successes.
    ``trials == 0`` gives the uninformative (0, 1).
    """
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1.0 - p) / trials + z2 / (4 * trials * trials)) / denom
    # At 0 (n) successes the bound is exactly 0 (1); the formula gives it only up to rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass
class TaskResult:
    """The episodes of one task in one eval set.

    successes: episodes with success_once; lengths / returns / success / state_ids: per-episode values, in
    episode order (state_ids: the reset state of each episode, to replay a failure; empty when unknown).
    """

    eval_set: str
    task: str
    successes: int
    lengths: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    success: list[bool] = field(default_factory=list)
    state_ids: list[int] = field(default_factory=list)

    @property
    def episodes(self) -> int:
        return len(self.lengths)

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    @property
    def mean_length(self) -> float:
        return sum(self.lengths) / self.episodes if self.episodes else 0.0

    @property
    def mean_return(self) -> float:
        return sum(self.returns) / self.episodes if self.episodes else 0.0

    def summary(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "eval_set": self.eval_set,
            "task": self.task,
            "episodes": self.episodes,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "ci95_low": low,
            "ci95_high": high,
            "mean_episode_len": self.mean_length,
            "mean_return": self.mean_return,
        }


def aggregate(tasks: list[TaskResult], eval_set: str, task: str = "average") -> dict[str, Any]:
    """Average row: the mean of the per-task success rates (each task weighs the same, as RLinf's tables) and
    the Wilson interval of all episodes pooled; episode length and return are per-episode means."""
    episodes = sum(t.episodes for t in tasks)
    successes = sum(t.successes for t in tasks)
    low, high = wilson_interval(successes, episodes)
    lengths = [n for t in tasks for n in t.lengths]
    returns = [r for t in tasks for r in t.returns]
    return {
        "eval_set": eval_set,
        "task": task,
        "episodes": episodes,
        "successes": successes,
        "success_rate": sum(t.success_rate for t in tasks) / len(tasks) if tasks else 0.0,
        "pooled_success_rate": successes / episodes if episodes else 0.0,
        "ci95_low": low,
        "ci95_high": high,
        "mean_episode_len": sum(lengths) / len(lengths) if lengths else 0.0,
        "mean_return": sum(returns) / len(returns) if returns else 0.0,
    }


@dataclass
class EvalResult:
    """Every task row of every eval set, the videos written and run metadata (checkpoint, greedy, seed ...)."""

    tasks: list[TaskResult] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_sets(self) -> list[str]:
        return list(dict.fromkeys(t.eval_set for t in self.tasks))

    def tasks_of(self, eval_set: str) -> list[TaskResult]:
        return [t for t in self.tasks if t.eval_set == eval_set]

    def averages(self) -> dict[str, dict[str, Any]]:
        """Average row per eval set."""
        return {name: aggregate(self.tasks_of(name), name) for name in self.eval_sets}

    def merge(self, other: EvalResult) -> EvalResult:
        return EvalResult(self.tasks + other.tasks, self.videos + other.videos, {**self.meta, **other.meta})

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        """Tracker scalars mirroring ``env/``: ``eval/success_once``, ``eval/episode_len``, ``eval/return``;
        every eval set not named like the prefix also as ``eval/<set>/success_once`` etc."""
        out: dict[str, float] = {}
        for index, (name, row) in enumerate(self.averages().items()):
            scopes = [prefix] if index == 0 else []
            if name != prefix:
                scopes.append(f"{prefix}/{name}")
            for scope in scopes:
                out[f"{scope}/success_once"] = row["success_rate"]
                out[f"{scope}/episode_len"] = row["mean_episode_len"]
                out[f"{scope}/return"] = row["mean_return"]
        return out

    def to_json(self) -> dict[str, Any]:
        """The JSON report (schema in docs: version, meta, eval_sets -> tasks + average, videos)."""
        averages = self.averages()
        return {
            "version": REPORT_VERSION,
            "meta": self.meta,
            "eval_sets": {
                name: {
                    "tasks": [t.summary() for t in self.tasks_of(name)],
                    "average": averages[name],
                    "episodes": [asdict(t) for t in self.tasks_of(name)],
                }
                for name in self.eval_sets
            },
            "videos": self.videos,
        }

    def write_json(self, path: str | Path) -> Path:
        """Write the report atomically (temp file + rename); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        os.replace(tmp, path)
        return path


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def results_table(result: EvalResult, title: str = "evaluation") -> Table:
    """One row per task (eval set, task, episodes, success rate, 95% Wilson interval, mean episode length),
    an average row per eval set, and an overall row when there are several eval sets."""
    table = Table(title=title, show_lines=False)
    table.add_column("eval set")
    table.add_column("task", overflow="fold")
    table.add_column("episodes", justify="right")
    table.add_column("success", justify="right")
    table.add_column("95% CI (Wilson)", justify="right")
    table.add_column("mean len", justify="right")

    def add(row: dict[str, Any], style: str | None = None) -> None:
        interval = f"[{_percent(row['ci95_low'])}, {_percent(row['ci95_high'])}]"
        table.add_row(
            row["eval_set"], row["task"], str(row["episodes"]), _percent(row["success_rate"]), interval,
            f"{row['mean_episode_len']:.1f}", style=style,
        )  # fmt: skip

    averages = result.averages()
    for name in result.eval_sets:
        for task in result.tasks_of(name):
            add(task.summary())
        add(averages[name], style="bold")
        table.add_section()
    if len(averages) > 1:
        add(aggregate(result.tasks, "all", "average of tasks"), style="bold cyan")
    return table

"""`runner`: the training loop's length, checkpoints, seeds, output directory and metric sinks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlvla_cli.config.base import StrictModel

LoggerBackend = Literal["tensorboard", "swanlab", "wandb"]


class LoggerConfig(StrictModel):
    """Where metrics go (RLinf's `runner.logger`)."""

    log_path: str = Field("runs", description="Root directory of run logs; a run writes into log_path/experiment_name.")
    project_name: str = Field("rlvla", description="Project name shown by swanlab / wandb.")
    experiment_name: str = Field("default", description="Run name; also the sub-directory of log_path.")
    logger_backends: list[LoggerBackend] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Metric sinks besides metrics.jsonl and the console: tensorboard, swanlab, wandb.",
    )
    swanlab_mode: Literal["offline", "disabled", "cloud", "local"] = Field(
        "offline",
        description="swanlab mode; `offline` and `disabled` need no network, `local` needs swanlab[dashboard].",
    )

    @model_validator(mode="after")
    def _unique_backends(self) -> LoggerConfig:
        if len(set(self.logger_backends)) != len(self.logger_backends):
            raise ValueError("`logger_backends` names a backend twice")
        return self


class RunnerConfig(StrictModel):
    """Loop length, evaluation and checkpoint cadence, resuming (RLinf's `runner`)."""

    max_epochs: int = Field(1000, ge=1, description="Number of training steps (rollout + update) to run.")
    max_steps: int = Field(
        -1, ge=-1, description="Stop after this many global steps; -1 means max_epochs decides. Nonzero when set."
    )
    val_check_interval: int = Field(
        -1, ge=-1, description="Run evaluation episodes every N steps; -1 disables periodic evaluation."
    )
    save_interval: int = Field(40, ge=-1, description="Save a checkpoint every N steps; -1 saves only at the end.")
    resume_dir: str | None = Field(
        None,
        description="Checkpoint directory to resume from exactly (weights, optimizer, RNG, step); null starts afresh.",
    )
    seed: int = Field(1234, ge=0, description="Global seed for torch, numpy and the env reset states.")
    output_dir: str | None = Field(
        None, description="Run directory for checkpoints, resolved config and metrics; null = log_path/experiment_name."
    )
    max_consecutive_skipped: int = Field(
        3, ge=1, description="Stop the run after this many consecutive updates skipped for a NaN/inf loss or gradient."
    )
    keep_last_checkpoints: int = Field(
        3, description="Keep the newest N checkpoints in the run directory (0 or less keeps all)."
    )
    max_worker_restarts: int = Field(
        3, ge=0, description="Restart a dead env worker (and collect its rollout again) at most this many times "
        "within worker_restart_window steps; one more death stops the run with a checkpoint (exit code 3).",
    )
    worker_restart_window: int = Field(
        100, ge=1, description="The window, in training steps, over which max_worker_restarts counts restarts.",
    )
    only_eval: bool = Field(False, description="Run evaluation only (no training), as RLinf's runner.only_eval.")
    logger: LoggerConfig = Field(default_factory=LoggerConfig, description="Metric sinks and run naming.")

    @model_validator(mode="after")
    def _check_steps(self) -> RunnerConfig:
        if self.max_steps == 0:
            raise ValueError("`max_steps` is 0, nothing would run; use -1 (use max_epochs) or a positive number")
        if self.save_interval == 0 or self.val_check_interval == 0:
            raise ValueError("an interval of 0 is ambiguous; use a positive number of steps or -1 to disable")
        return self

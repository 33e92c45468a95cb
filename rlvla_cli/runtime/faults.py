"""Runtime faults (issue 19): which exceptions are faults outside the user's config, the env-worker restart
budget, and the drill hooks ``scripts/fault_drill.py`` drives through environment variables.

A fault ends the run with :class:`rlvla_cli.errors.RuntimeFault` (one paragraph, exit code 3) after the runner
has saved the last completed update; a user mistake stays a ``UserError`` (exit code 2); anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque

import torch

from rlvla_cli.errors import WorkerDied, WorkerError

# Drill hooks (read per call, so a test can set them in-process; off unless set): NaN rewards from this global step
# on (the update sees a NaN loss and is skipped; `runner.max_consecutive_skipped` then stops the run); pauses at the
# start of loop stages (`rollout:3,update:3,checkpoint@2:5`), once per stage and only after a completed update, so a
# drill can signal or kill the process at a known point (it waits for the `drill: paused` line on stderr).
NAN_REWARDS_FROM_STEP = "RLVLA_DRILL_NAN_REWARDS_FROM_STEP"
PAUSE_S = "RLVLA_DRILL_PAUSE_S"
_paused: set[str] = set()


def drill_value(name: str) -> float | None:
    """The float in environment variable ``name``, or None when unset or empty."""
    text = os.environ.get(name, "").strip()
    return float(text) if text else None


def drill_pause(stage: str, global_step: int) -> None:
    """Sleep at the start of ``stage`` when the pause hook names it: ``stage:seconds`` pauses the first time at
    ``global_step >= 1``, ``stage@N:seconds`` the first time at ``global_step >= N``."""
    spec = {}
    for item in os.environ.get(PAUSE_S, "").split(","):
        key, _, seconds = item.partition(":")
        name, _, at = key.strip().partition("@")
        if seconds:
            spec[name] = (int(at or 1), float(seconds))
    if stage not in spec or stage in _paused or global_step < spec[stage][0]:
        return
    _paused.add(stage)
    seconds = spec[stage][1]
    print(f"drill: paused in {stage} at step {global_step} for {seconds:g} s", file=sys.stderr, flush=True)
    time.sleep(seconds)


def inject_nan_rewards(rewards: torch.Tensor, global_step: int) -> bool:
    """Fill ``rewards`` with NaN (in place) when the NaN drill hook asks for it at this step; True when it did."""
    start = drill_value(NAN_REWARDS_FROM_STEP)
    if start is None or global_step < start:
        return False
    rewards.fill_(math.nan)
    return True


class RestartBudget:
    """At most ``limit`` env-worker restarts within any ``window`` consecutive training steps.

    ``allow(step)`` records a restart at global step ``step`` and says whether it is within the budget.
    """

    def __init__(self, limit: int, window: int):
        self.limit, self.window = limit, window
        self.steps: deque[int] = deque()
        self.total = 0

    def allow(self, step: int) -> bool:
        self.steps.append(step)
        self.total += 1
        while self.steps and self.steps[0] <= step - self.window:
            self.steps.popleft()
        return len(self.steps) <= self.limit


def is_write_failure(err: BaseException) -> bool:
    """A failed file write (full disk, quota, read-only): an ``OSError``, or torch.save's ``RuntimeError`` from
    its zip writer (a full disk there reads ``[enforce fail at inline_container.cc] unexpected pos ...``)."""
    if isinstance(err, OSError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        mark in text for mark in ("inline_container", "PytorchStreamWriter", "file write failed"))


def describe(err: BaseException, stage: str) -> tuple[str, str | None, str] | None:
    """(what died / failed, why, what to do) when ``err`` is a runtime fault, else None (a bug: traceback).

    stage: what the runner was doing (``rollout``, ``update``, ``evaluation``, ``checkpoint``, ``setup``).
    """
    if isinstance(err, WorkerDied):
        return (f"env worker {err.worker} (pid {err.pid}) {err.why} during the {stage}", None,
                "check the simulator's log above and the machine's memory (`dmesg` shows the OOM killer); "
                "raise runner.max_worker_restarts to tolerate more restarts")
    if isinstance(err, WorkerError):
        return (f"{err} (during the {stage})", None,
                "check the worker's log above; on a cluster, check that every node is still up")
    if isinstance(err, torch.OutOfMemoryError):
        return (f"the GPU ran out of memory during the {stage}", _first_line(err),
                "lower actor.micro_batch_size or env.train.total_num_envs, or set actor.enable_offload / "
                "rollout.enable_offload; `rlvla plan-gpus` predicts the memory per GPU")
    if isinstance(err, MemoryError):
        return (f"the driver ran out of host memory during the {stage}", None,
                "use fewer env workers or envs (env.train.total_num_envs), or a machine with more memory")
    accelerator_error = getattr(torch, "AcceleratorError", ())
    if isinstance(err, accelerator_error) or (isinstance(err, RuntimeError) and "CUDA error" in str(err)):
        return (f"a CUDA error stopped the {stage}", _first_line(err),
                "run again with CUDA_LAUNCH_BLOCKING=1 and --debug to see where; check `nvidia-smi` for Xid errors")
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__

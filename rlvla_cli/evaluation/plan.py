"""What an eval set runs: how many episodes, which reset state ids, and how episodes map to table rows.

- LIBERO: one row per task (grouped by the task's instruction). Reset state ids enumerate task x init state;
  the adapter's contract is ``task = id % num_tasks``, ``init state = id // num_tasks``, so the first
  ``N * num_tasks`` ids hold N init states of every task. The default N is 50 (LIBERO ships 50 init states per
  task), i.e. RLinf's protocol of every task x trial.
- ManiSkill: one row per env id (a ManiSkill "task list" is several eval sets, one per id).
- Built-in task: one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LIBERO_SUITE_TASKS = {
    "libero_spatial": 10,
    "libero_object": 10,
    "libero_goal": 10,
    "libero_10": 10,
    "libero_90": 90,
    "libero_130": 130,
}
LIBERO_INIT_STATES = 50


@dataclass(frozen=True)
class EvalPlan:
    """episodes: total episodes of the set; state_ids: one reset state id per episode; per_task_rows: group
    rows by the instruction seen at reset (else every episode goes to the row ``label``)."""

    label: str
    episodes: int
    state_ids: tuple[int, ...]
    per_task_rows: bool

    def waves(self, batch: int) -> list[list[int]]:
        """The state ids in waves of ``batch`` envs; the last wave is padded with repeats of its first id (the
        padding episodes run but are not counted)."""
        ids = list(self.state_ids)
        out = [ids[i : i + batch] for i in range(0, len(ids), batch)]
        if out and len(out[-1]) < batch:
            out[-1] = out[-1] + [out[-1][0]] * (batch - len(out[-1]))
        return out


def num_tasks(env_cfg: Any) -> int:
    """Tasks of an eval set: LIBERO's suite (or its ``task_ids`` subset); 1 for everything else."""
    if getattr(env_cfg, "env_type", None) != "libero":
        return 1
    params = env_cfg.init_params
    if params.task_ids:
        return len(params.task_ids)
    return LIBERO_SUITE_TASKS[params.task_suite_name]


def task_label(env_cfg: Any) -> str:
    """Row name of single-task eval sets: the ManiSkill env id, the LIBERO suite, or the built-in task."""
    env_type = getattr(env_cfg, "env_type", "builtin")
    if env_type == "maniskill":
        return env_cfg.init_params.id
    if env_type == "libero":
        return env_cfg.init_params.task_suite_name
    return "builtin-tabletop"


def make_plan(env_cfg: Any, episodes_per_task: int | None, seed: int | None = None) -> EvalPlan:
    """Episodes per task (None: 50 init states per LIBERO task, one wave of ``total_num_envs`` otherwise)."""
    tasks = num_tasks(env_cfg)
    libero = getattr(env_cfg, "env_type", None) == "libero"
    if episodes_per_task is None:
        episodes_per_task = LIBERO_INIT_STATES if libero else env_cfg.total_num_envs
    if episodes_per_task < 1:
        raise ValueError(f"episodes per task must be >= 1, got {episodes_per_task}")
    total = episodes_per_task * tasks
    # LIBERO ids index task x init state, so they start at 0; elsewhere the seed shifts the scenes.
    first = 0 if libero else (env_cfg.seed if seed is None else seed)
    return EvalPlan(task_label(env_cfg), total, tuple(range(first, first + total)), per_task_rows=tasks > 1)

"""What an eval set runs: how many episodes, which reset state ids, and how episodes map to table rows.

- LIBERO: one row per task (grouped by the task's instruction). The adapter flattens reset state ids task-major
  (``envs/libero.py: state_id_to_task``: the ids of task t follow those of tasks 0..t-1, one per stored init
  state), so N episodes of task t use init states 0..N-1 of that task (wrapping when N exceeds them). The
  default N is every init state of every task (LIBERO ships 50 per task), RLinf's protocol of task x trial.
- ManiSkill: one row per env id (a ManiSkill "task list" is several eval sets, one per id).
- Built-in task: one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlvla_cli.config.env import EnvConfigBase

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


def libero_state_ids(counts: list[int], per_task: int | None) -> list[int]:
    """Flattened ids of init states 0..per_task-1 of every task (task-major); ``counts``: init states per task;
    None takes all of them. A task with fewer init states than ``per_task`` repeats them in order."""
    ids, offset = [], 0
    for count in counts:
        wanted = count if per_task is None else per_task
        ids.extend(offset + (i % count) for i in range(wanted))
        offset += count
    return ids


def make_plan(
    env_cfg: EnvConfigBase, episodes_per_task: int | None, seed: int | None = None, task_counts: list[int] | None = None
) -> EvalPlan:
    """Episodes per task (None: every LIBERO init state, one wave of ``total_num_envs`` otherwise).

    task_counts: LIBERO's init states per task when the env is at hand (else 50 per task is assumed)."""
    if episodes_per_task is not None and episodes_per_task < 1:
        raise ValueError(f"episodes per task must be >= 1, got {episodes_per_task}")
    tasks = env_cfg.num_tasks
    if env_cfg.episodes_are_init_states:
        ids = libero_state_ids(task_counts or [LIBERO_INIT_STATES] * tasks, episodes_per_task)
        return EvalPlan(env_cfg.task_label, len(ids), tuple(ids), per_task_rows=tasks > 1)
    total = env_cfg.total_num_envs if episodes_per_task is None else episodes_per_task
    first = env_cfg.seed if seed is None else seed  # the seed shifts the scenes of seeded simulators
    return EvalPlan(env_cfg.task_label, total, tuple(range(first, first + total)), per_task_rows=False)

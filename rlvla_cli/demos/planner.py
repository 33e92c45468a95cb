"""Successful joint-position trajectories from ManiSkill's own motion-planning solutions.

The solutions (mani_skill.examples.motionplanning.panda.solutions) drive a Panda arm in ``pd_joint_pos``
with mplib; they need numpy < 2 (mplib 0.1.1 segfaults under numpy 2).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from rlvla_cli.errors import UserError

# env id -> name of the solution function in mani_skill.examples.motionplanning.panda.solutions
PLANNER_SOLUTIONS = {
    "PickCube-v1": "solvePickCube",
    "PushCube-v1": "solvePushCube",
    "StackCube-v1": "solveStackCube",
    "PullCube-v1": "solvePullCube",
    "PlaceSphere-v1": "solvePlaceSphere",
    "LiftPegUpright-v1": "solveLiftPegUpright",
    "PegInsertionSide-v1": "solvePegInsertionSide",
    "PlugCharger-v1": "solvePlugCharger",
    "PullCubeTool-v1": "solvePullCubeTool",
    "StackPyramid-v1": "solveStackPyramid",
}


def check_planner_task(env_id: str) -> None:
    """Raise a UserError naming the tasks that have a planner when ``env_id`` has none."""
    if env_id in PLANNER_SOLUTIONS:
        return
    close = difflib.get_close_matches(env_id, PLANNER_SOLUTIONS, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    raise UserError(
        f"ManiSkill has no motion-planning solution for `{env_id}`.{hint} Tasks with a planner: "
        + ", ".join(PLANNER_SOLUTIONS),
        key="--env",
        fix="pick one of those tasks, or collect demonstrations another way (teleoperation, a scripted policy)",
    )


@dataclass
class PlannedEpisode:
    """One planner attempt. joint_actions: float32 ``[T, 8]`` (7 arm joints + gripper) when successful."""

    seed: int
    success: bool
    joint_actions: np.ndarray | None
    reason: str = ""


class _ActionRecorder:
    """Gymnasium wrapper (built lazily so gymnasium is imported in the worker) recording step actions."""

    def __new__(cls, env):
        import gymnasium as gym

        class Recorder(gym.Wrapper):
            def __init__(self, inner):
                super().__init__(inner)
                self.actions: list[np.ndarray] = []

            def reset(self, **kwargs):
                self.actions = []
                return self.env.reset(**kwargs)

            def step(self, action):
                self.actions.append(np.asarray(action.cpu() if hasattr(action, "cpu") else action, dtype=np.float32))
                return self.env.step(action)

        return Recorder(env)


def make_planner_env(env_id: str):
    """The env the solutions expect: CPU physics, joint-position control, no observations."""
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401 - registers the tasks

    env = gym.make(env_id, obs_mode="none", control_mode="pd_joint_pos", sim_backend="cpu", render_mode="rgb_array")
    return _ActionRecorder(env)


def plan_episode(env, env_id: str, seed: int) -> PlannedEpisode:
    """Run the task's solution once from ``reset(seed=seed)``; keep the actions only when it succeeds."""
    from mani_skill.examples.motionplanning.panda import solutions

    solve = getattr(solutions, PLANNER_SOLUTIONS[env_id])
    try:
        result = solve(env, seed=seed, debug=False, vis=False)
    except Exception as err:  # the planner raises on unreachable poses; that seed is simply skipped
        return PlannedEpisode(seed, False, None, f"planner error: {err}")
    if result == -1:
        return PlannedEpisode(seed, False, None, "no motion plan found")
    if not bool(result[-1]["success"].item()):
        return PlannedEpisode(seed, False, None, "plan executed but the task did not succeed")
    return PlannedEpisode(seed, True, np.stack(env.actions))

"""Replay planner trajectories into the control mode and observations that RL training uses.

ManiSkill's ``from_pd_joint_pos`` converts joint-position targets into ``pd_ee_delta_pose`` actions by
closed-loop tracking on a second env; we wrap that env to record every (observation, action) pair it
actually steps, so the stored actions reproduce the stored observations exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvla_cli.demos.planner import PlannedEpisode


@dataclass
class ReplayedEpisode:
    """A replayed demonstration in the adapter's observation format.

    main_images: uint8 ``[T, H, W, 3]``; wrist_images: uint8 ``[T, H, W, 3]`` or None; states: float32 ``[T, S]``;
    actions: float32 ``[T, 7]`` (ee delta xyz, rpy, gripper; the action that followed each observation);
    task_description: the instruction; success: whether the replay still solved the task.
    """

    seed: int
    main_images: np.ndarray
    wrist_images: np.ndarray | None
    states: np.ndarray
    actions: np.ndarray
    task_description: str
    success: bool


def _observation_recorder(env):
    import gymnasium as gym

    class ObservationRecorder(gym.Wrapper):
        """Records the observation each action was taken from, and the action itself."""

        def __init__(self, inner):
            super().__init__(inner)
            self.observations: list = []
            self.actions: list[np.ndarray] = []
            self._last = None

        def reset(self, **kwargs):
            self.observations, self.actions = [], []
            obs, info = self.env.reset(**kwargs)
            self._last = obs
            return obs, info

        def step(self, action):
            self.observations.append(self._last)
            self.actions.append(np.asarray(action.cpu() if hasattr(action, "cpu") else action, dtype=np.float32))
            obs, reward, terminated, truncated, info = self.env.step(action)
            self._last = obs
            return obs, reward, terminated, truncated, info

    return ObservationRecorder(env)


def make_replay_envs(env_id: str, image_size: int, control_mode: str = "pd_ee_delta_pose"):
    """(source env in pd_joint_pos, recorded target env in ``control_mode`` with RGB + state)."""
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401 - registers the tasks

    source = gym.make(env_id, obs_mode="none", control_mode="pd_joint_pos", sim_backend="cpu")
    target = gym.make(
        env_id,
        obs_mode="rgb",
        control_mode=control_mode,
        sim_backend="cpu",
        sensor_configs=dict(width=image_size, height=image_size),
        max_episode_steps=10_000,  # the converter may take several target steps per planner step
    )
    return source, _observation_recorder(target)


def replay_episode(planned: PlannedEpisode, env_id: str, source, target, control_mode="pd_ee_delta_pose"):
    """Convert ``planned.joint_actions`` into ``control_mode`` on ``target`` and return the recording."""
    from mani_skill.trajectory.utils.actions import conversion

    from rlvla_cli.envs.maniskill import camera_rgb, env_instruction, proprio_state

    source.reset(seed=planned.seed)
    target.reset(seed=planned.seed)
    info = conversion.from_pd_joint_pos(control_mode, list(planned.joint_actions), source, target)
    success = bool(np.asarray(info.get("success", False)).reshape(-1)[0])
    instruction = env_instruction(target, env_id)
    camera = next(iter(target.observations[0]["sensor_data"]))  # the adapter's default camera
    return ReplayedEpisode(
        seed=planned.seed,
        main_images=np.concatenate([camera_rgb(o, camera).numpy() for o in target.observations]),
        wrist_images=None,  # ManiSkill's Panda tasks have one camera; the adapter emits no wrist image either
        states=np.concatenate([proprio_state(o).numpy() for o in target.observations]),
        actions=np.stack(target.actions).reshape(len(target.actions), -1).astype(np.float32),
        task_description=instruction,
        success=success,
    )


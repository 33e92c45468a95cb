"""MetaWorld MT50 adapter (``metaworld`` 3.0.0 from PyPI, MuJoCo) behind the VecEnv contract.

Follows RLinf's ``rlinf/envs/metaworld/metaworld_env.py``:
- tasks: the 50 v3 tasks in RLinf's order with its instructions (metaworld_tasks.py); reset state id ->
  (task ``id // trials_per_task``, trial ``id % trials_per_task``). A trial is goal variation ``trial`` of
  ``metaworld.MT1(task, seed=benchmark_seed)`` set with ``env.set_task`` (MetaWorld then freezes its random
  vector), so one id always gives the same initial state (GRPO groups share it);
- camera ``camera_id`` 2 moved to (0.75, 0.075, 0.7), image rotated by 180 degrees; ``states`` float32 ``[B, 4]``
  = the observation's first four entries (hand position, gripper); 4-D actions (xyz delta, gripper) in [-1, 1];
- after a reset, ``num_steps_wait`` (15) zero-action steps; success = the env's ``info["success"]``, which
  terminates the episode (RLinf: terminations = success).

Speed: physics steps at ~500/s per core; images are rendered only when an observation is asked for (after a
reset and at the end of a chunk), and only for envs that moved since their last render.
"""

from __future__ import annotations

import numpy as np
import torch

from rlvla_cli.config.env import MetaWorldInitParams
from rlvla_cli.envs.base import Obs, ObsSpec
from rlvla_cli.envs.episode import EpisodeSettings, EpisodeVecEnv, SimStep
from rlvla_cli.envs.libero_render import choose_backend, export_backend
from rlvla_cli.envs.metaworld_tasks import MT50_INSTRUCTIONS, MT50_TASKS
from rlvla_cli.errors import UserError

STATE_DIM, ACTION_DIM = 4, 4
CAMERA_POS = (0.75, 0.075, 0.7)  # RLinf: "Set camera position to align with sft"


def import_metaworld(render_backend: str):
    """Choose the renderer, then import metaworld (a clear error when it is not installed)."""
    export_backend(choose_backend(render_backend))
    try:
        import metaworld
    except ImportError as err:
        raise UserError("MetaWorld is not installed", key="env.*.env_type",
                        fix="pip install 'rlvla[metaworld]' (metaworld==3.0.0, RLinf's version)") from err
    return metaworld


def select_tasks(task_ids: list[int] | None) -> list[str]:
    """MT50 task names, narrowed to ``task_ids`` (indices into RLinf's order)."""
    if task_ids is None:
        return list(MT50_TASKS)
    bad = [t for t in task_ids if not 0 <= t < len(MT50_TASKS)]
    if bad:
        raise UserError(f"task_ids {bad} are outside MT50's {len(MT50_TASKS)} tasks",
                        key="env.*.init_params.task_ids", fix=f"use indices 0..{len(MT50_TASKS) - 1}")
    return [MT50_TASKS[t] for t in task_ids]


def state_id_to_trial(state_id: int, num_tasks: int, trials: int) -> tuple[int, int]:
    """Reset state id -> (task position, trial), ids wrapping around ``num_tasks * trials``."""
    state_id %= num_tasks * trials
    return state_id // trials, state_id % trials


def render(env) -> np.ndarray:
    """The env's camera image ``[H, W, 3]``. gymnasium's renderer makes its GL context current only when it is
    created, so with several envs in one process each render must make its own context current first (without
    this, renders came out black or partly black here)."""
    env.mujoco_renderer._get_viewer("rgb_array").make_context_current()
    return env.render()


class MetaWorldVecEnv(EpisodeVecEnv):
    """B MetaWorld envs in this process; a slot's env is rebuilt only when its task changes."""

    def __init__(self, num_envs: int, params: MetaWorldInitParams, settings: EpisodeSettings):
        self.params = params
        self.metaworld = import_metaworld(params.render_backend)
        self.task_names = select_tasks(params.task_ids)
        self.num_reset_states = len(self.task_names) * params.trials_per_task
        self._benchmarks: dict[str, object] = {}
        spec = ObsSpec(image_shape=(params.camera_height, params.camera_width, 3), state_dim=STATE_DIM)
        super().__init__(num_envs, action_dim=ACTION_DIM, obs_spec=spec, settings=settings)
        self.slots: list = [None] * num_envs
        self.slot_task: list[int] = [-1] * num_envs
        self.states = torch.zeros(num_envs, STATE_DIM)
        self.images = [np.zeros(spec.image_shape, dtype=np.uint8)] * num_envs  # last renders, unflipped
        self.stale = [True] * num_envs
        self.instructions = [""] * num_envs

    def _benchmark(self, name: str):
        if name not in self._benchmarks:
            self._benchmarks[name] = self.metaworld.MT1(name, seed=self.params.benchmark_seed)
        return self._benchmarks[name]

    def _make(self, name: str):
        p = self.params
        env = self._benchmark(name).train_classes[name](
            render_mode="rgb_array", camera_id=p.camera_id, width=p.camera_width, height=p.camera_height
        )
        env.model.cam_pos[p.camera_id] = CAMERA_POS
        return env

    def _sim_reset(self, env_ids: torch.Tensor, state_ids: torch.Tensor) -> None:
        trials = self.params.trials_per_task
        for env_id, state_id in zip(env_ids.tolist(), state_ids.tolist(), strict=True):
            position, trial = state_id_to_trial(int(state_id), len(self.task_names), trials)
            name = self.task_names[position]
            if self.slot_task[env_id] != position:
                if self.slots[env_id] is not None:
                    self.slots[env_id].close()
                self.slots[env_id], self.slot_task[env_id] = self._make(name), position
            env = self.slots[env_id]
            env.set_task(self._benchmark(name).train_tasks[trial])
            obs, _ = env.reset()
            for _ in range(self.params.num_steps_wait):
                obs, _, _, _, _ = env.step(np.zeros(ACTION_DIM, dtype=np.float32))
            self.states[env_id] = torch.from_numpy(np.asarray(obs[:STATE_DIM], dtype=np.float32))
            self.stale[env_id] = True
            self.instructions[env_id] = MT50_INSTRUCTIONS[name]

    def _sim_step(self, actions: torch.Tensor, active: torch.Tensor) -> SimStep:
        success = torch.zeros(self.num_envs, dtype=torch.bool)
        for env_id in torch.nonzero(active).flatten().tolist():
            action = actions[env_id].clamp(-1.0, 1.0).numpy().astype(np.float32)
            obs, _, _, _, info = self.slots[env_id].step(action)
            self.states[env_id] = torch.from_numpy(np.asarray(obs[:STATE_DIM], dtype=np.float32))
            self.stale[env_id] = True
            success[env_id] = bool(info["success"])
        return SimStep(reward=success.float(), terminated=success.clone(), success=success)

    def _sim_obs(self) -> Obs:
        for env_id, stale in enumerate(self.stale):
            if stale and self.slots[env_id] is not None:
                self.images[env_id] = render(self.slots[env_id])
                self.stale[env_id] = False
        out = np.empty((self.num_envs, *self.obs_spec.image_shape), dtype=np.uint8)
        for row, image in zip(out, self.images, strict=True):
            np.copyto(row, image[::-1, ::-1])  # rendered upside down and mirrored (RLinf flips both axes)
        return {"main_images": torch.from_numpy(out), "states": self.states.clone(),
                "task_descriptions": list(self.instructions)}

    def close(self) -> None:
        super().close()
        for env in self.slots:
            if env is not None:
                env.close()
        self.slots = [None] * self.num_envs

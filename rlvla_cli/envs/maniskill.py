"""ManiSkill3 adapter: any registered env id behind the VecEnv contract.

Two physics layouts behind ``init_params.sim_backend``:

- ``cpu``: B single-env simulators (``gym.make(..., num_envs=1, sim_backend="cpu")``) in this process; only
  envs whose episode is running are stepped. Spread B over env workers to use several cores.
- ``physx_cuda``: one GPU simulator with ``num_envs=B``; all envs step together and finished ones are
  partially reset (``options={"env_idx": ...}``).

Observations: ``main_images`` from the chosen sensor camera (``sensor_data[cam]["rgb"]``), ``states`` = the
agent's ``qpos``, ``task_descriptions`` from the env's ``get_language_instruction()`` when it has one, else the
table in ``maniskill_tasks``. With ``obs_mode: state`` there is no camera: ``states`` is ManiSkill's flattened
state vector (agent qpos / qvel + the task's extras, e.g. PushCube's tcp, goal and cube poses) and
``main_images`` is empty, uint8 ``[B, 0, 0, 3]`` (the key stays so every runtime buffer keeps one layout).
The reset state id is the episode seed. Truncation is the adapter's (ManiSkill's own time limit is disabled).
"""

from __future__ import annotations

import os

import torch

from rlvla_cli.config.env import ManiSkillInitParams
from rlvla_cli.envs.base import Obs, ObsSpec
from rlvla_cli.envs.episode import EpisodeSettings, EpisodeVecEnv, SimStep
from rlvla_cli.envs.maniskill_rewards import maniskill_reward_mode, step_reward
from rlvla_cli.envs.maniskill_tasks import (
    check_assets,
    check_registered,
    default_instruction,
    import_extra_modules,
)
from rlvla_cli.errors import UserError

_NO_TIME_LIMIT = 10**9
VULKAN_FIX = (
    "SAPIEN needs a Vulkan device even on a CPU machine; there it is Mesa's lavapipe, and only Mesa 25 works "
    "(Debian 12's Mesa 22.3 lacks a feature SAPIEN needs). On Debian 12 add `bookworm-backports` to the "
    "`Suites:` line of /etc/apt/sources.list.d/debian.sources, run `apt-get update` and "
    "`apt-get install -y -t bookworm-backports mesa-vulkan-drivers`; on a GPU machine install the NVIDIA "
    "Vulkan ICD (libnvidia-gl)"
)


def _is_vulkan_error(err: BaseException) -> bool:
    text = str(err).lower()
    return any(key in text for key in ("vulkan", "vk::", "physical device", "icd", "failed to find a supported"))


def make_maniskill_env(params: ManiSkillInitParams, num_envs: int):
    """``gym.make`` the configured task (``num_envs`` parallel envs), turning known failures into UserErrors."""
    os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401 - registers the built-in tasks

    import_extra_modules(params.extra_modules)
    check_registered(params.id)
    check_assets(params.id)
    sim_config = {k: v for k, v in (("sim_freq", params.sim_freq), ("control_freq", params.control_freq)) if v}
    render_backend = params.render_backend
    if render_backend == "auto":
        render_backend = "gpu" if torch.cuda.is_available() else "cpu"
    kwargs = dict(
        num_envs=num_envs, obs_mode=params.obs_mode, control_mode=params.control_mode,
        reward_mode=maniskill_reward_mode(params.reward_mode), sim_backend=params.sim_backend,
        render_backend=render_backend, sensor_configs={"width": params.camera_width, "height": params.camera_height},
        max_episode_steps=_NO_TIME_LIMIT,
    )
    if sim_config:
        kwargs["sim_config"] = sim_config
    try:
        return gym.make(params.id, **kwargs)
    except RuntimeError as err:
        if _is_vulkan_error(err):
            raise UserError(f"no usable Vulkan device for ManiSkill ({err})", fix=VULKAN_FIX) from err
        if params.sim_backend == "physx_cuda":
            raise UserError(
                f"ManiSkill GPU physics failed to start ({err})", key="env.*.init_params.sim_backend",
                fix="physx_cuda needs CUDA and downloads its PhysX library on first use (offline that fails: "
                "copy ~/.sapien from a machine with internet), or use sim_backend: cpu",
            ) from err
        raise


def camera_rgb(obs: dict, camera: str) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` of ``camera`` from a raw ManiSkill observation (the adapter's ``main_images``)."""
    return torch.as_tensor(obs["sensor_data"][camera]["rgb"]).cpu()[..., :3].to(torch.uint8)


def proprio_state(obs: dict) -> torch.Tensor:
    """float32 ``[B, S]``: the robot's joint positions (the adapter's ``states``)."""
    return torch.as_tensor(obs["agent"]["qpos"]).cpu().float()


def flat_state(obs) -> torch.Tensor:
    """float32 ``[B, S]``: ManiSkill's flattened observation in ``obs_mode: state`` (already one tensor)."""
    return torch.as_tensor(obs).cpu().float()


def env_instruction(sim, env_id: str, env_index: int = 0, override: str | None = None) -> str:
    """The instruction of sub-env ``env_index``: ``override`` if given, else the env's own
    ``get_language_instruction()``, else the built-in table."""
    if override:
        return override
    getter = getattr(sim.unwrapped, "get_language_instruction", None)
    if getter is not None:
        texts = getter()
        return str(texts[env_index] if isinstance(texts, (list, tuple)) else texts)
    return default_instruction(env_id)


class ManiSkillVecEnv(EpisodeVecEnv):
    """B ManiSkill envs (CPU: B single-env simulators; GPU: one batched simulator)."""

    def __init__(self, num_envs: int, params: ManiSkillInitParams, settings: EpisodeSettings):
        self.params = params
        self.gpu = params.sim_backend == "physx_cuda"
        self.state_only = params.obs_mode == "state"
        self.sims = [make_maniskill_env(params, num_envs)] if self.gpu else [
            make_maniskill_env(params, 1) for _ in range(num_envs)
        ]
        try:
            first_obs, _ = self.sims[0].reset(seed=settings.seed)
            self.camera = None if self.state_only else params.camera_name or next(iter(first_obs["sensor_data"]))
            image = self._image(first_obs)
            state = self._state(first_obs)
        except KeyError as err:
            self.close_sims()
            raise UserError(
                f"ManiSkill env {params.id!r} gives no camera/state {err} with obs_mode {params.obs_mode!r}",
                key="env.*.init_params.camera_name", fix="use obs_mode rgb and a camera name the task defines",
            ) from err
        spec = ObsSpec(image_shape=tuple(image.shape[1:]), state_dim=state.shape[1])
        action_dim = self.sims[0].action_space.shape[-1]
        super().__init__(num_envs, action_dim=action_dim, obs_spec=spec, settings=settings)
        self.images = torch.zeros(num_envs, *spec.image_shape, dtype=torch.uint8)
        self.states = torch.zeros(num_envs, spec.state_dim)
        self.instructions = [params.instruction or default_instruction(params.id)] * num_envs
        self.prev_grasped = torch.zeros(num_envs, dtype=torch.bool)
        self.gpu_seeds = torch.zeros(num_envs, dtype=torch.int64)

    # ---------------------------------------------------------------------------------- obs pieces
    def _image(self, obs) -> torch.Tensor:
        if self.state_only:
            return torch.zeros(flat_state(obs).shape[0], 0, 0, 3, dtype=torch.uint8)
        return camera_rgb(obs, self.camera)

    def _state(self, obs) -> torch.Tensor:
        return flat_state(obs) if self.state_only else proprio_state(obs)

    def _instruction(self, sim, env_index: int) -> str:
        return env_instruction(sim, self.params.id, env_index, self.params.instruction)

    def _store(self, rows: torch.Tensor, obs, obs_rows: torch.Tensor | None = None) -> None:
        images, states = self._image(obs), self._state(obs)
        if obs_rows is not None:
            images, states = images[obs_rows], states[obs_rows]
        self.images[rows] = images
        self.states[rows] = states

    # ---------------------------------------------------------------------------------- primitives
    def _sim_reset(self, env_ids: torch.Tensor, state_ids: torch.Tensor) -> None:
        self.prev_grasped[env_ids] = False
        if self.gpu:
            # ManiSkill wants one seed per parallel env even for a partial reset: keep the others' seeds.
            sim = self.sims[0]
            self.gpu_seeds[env_ids] = state_ids
            obs, _ = sim.reset(seed=self.gpu_seeds.tolist(), options={"env_idx": env_ids.to(sim.unwrapped.device)})
            self._store(env_ids, obs, env_ids)
            for env_id in env_ids.tolist():
                self.instructions[env_id] = self._instruction(sim, env_id)
            return
        for env_id, state_id in zip(env_ids.tolist(), state_ids.tolist(), strict=True):
            obs, _ = self.sims[env_id].reset(seed=int(state_id))
            self._store(torch.tensor([env_id]), obs)
            self.instructions[env_id] = self._instruction(self.sims[env_id], 0)

    def _sim_step(self, actions: torch.Tensor, active: torch.Tensor) -> SimStep:
        reward = torch.zeros(self.num_envs)
        terminated = torch.zeros(self.num_envs, dtype=torch.bool)
        success = torch.zeros(self.num_envs, dtype=torch.bool)
        if self.gpu:
            sim = self.sims[0]
            obs, env_reward, term, _, info = sim.step(actions.to(sim.unwrapped.device))
            rows = torch.nonzero(active).flatten()
            self._store(rows, obs, rows)  # finished envs keep their final observation
            r, grasped = step_reward(self.params.reward_mode, env_reward.cpu(), _cpu(info), self.prev_grasped)
            self.prev_grasped = torch.where(active, grasped, self.prev_grasped)
            return SimStep(reward=r, terminated=term.cpu().bool(), success=_success(info, self.num_envs))
        for env_id in torch.nonzero(active).flatten().tolist():
            obs, env_reward, term, _, info = self.sims[env_id].step(actions[env_id : env_id + 1])
            self._store(torch.tensor([env_id]), obs)
            info = _cpu(info)
            r, grasped = step_reward(self.params.reward_mode, env_reward, info, self.prev_grasped[env_id : env_id + 1])
            reward[env_id], self.prev_grasped[env_id] = r[0], grasped[0]
            terminated[env_id] = bool(torch.as_tensor(term).reshape(-1)[0])
            success[env_id] = bool(_success(info, 1)[0])
        return SimStep(reward=reward, terminated=terminated, success=success)

    def _sim_obs(self) -> Obs:
        return {"main_images": self.images.clone(), "states": self.states.clone(),
                "task_descriptions": list(self.instructions)}

    def close_sims(self) -> None:
        for sim in self.sims:
            try:
                sim.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self.sims = []

    def close(self) -> None:
        super().close()
        self.close_sims()


def _cpu(info: dict) -> dict:
    return {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in info.items()}


def _success(info: dict, batch: int) -> torch.Tensor:
    value = info.get("success")
    if value is None:
        return torch.zeros(batch, dtype=torch.bool)
    return torch.as_tensor(value).reshape(batch).bool().cpu()

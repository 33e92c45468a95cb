"""LIBERO adapter (hf-libero: robosuite + MuJoCo) behind the VecEnv contract.

- Suites ``libero_spatial / object / goal / 10 / 90`` and ``libero_130`` (all five concatenated). The reset
  state id indexes the flattened list of (task, init state) pairs of the suite (``task_ids`` may narrow the
  tasks): id -> task ``t`` and its ``k``-th stored init state.
- After each reset the env runs ``num_steps_wait`` no-op steps (gripper open) while objects settle.
- Observation: agent-view and wrist images rotated by 180 degrees (LIBERO renders them upside down),
  ``states`` float32 ``[B, 8]`` = eef position (3) + eef axis-angle (3) + gripper qpos (2), the task's
  language instruction. Success is the env's own ``done`` (task predicate satisfied); it terminates.
- ``LIBERO_CONFIG_PATH`` is managed: a config.yaml is written before ``libero`` is imported, so its
  first-import ``input()`` prompt never appears. Scene assets come from ``assets_dir`` (or hf-libero's
  locations); when absent an AssetError names ``rlvla download-assets libero``.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from rlvla_cli.config.env import LiberoInitParams
from rlvla_cli.envs.base import Obs, ObsSpec
from rlvla_cli.envs.episode import EpisodeSettings, EpisodeVecEnv, SimStep
from rlvla_cli.errors import AssetError, UserError

SUITES_130 = ("libero_spatial", "libero_object", "libero_goal", "libero_90", "libero_10")
ASSET_SUBDIRS = ("articulated_objects", "stable_scanned_objects", "turbosquid_objects", "stable_hope_objects")
NOOP_ACTION = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])  # no motion, gripper open
STATE_DIM = 8


# ---------------------------------------------------------------------------------------------- setup
def libero_package_root() -> Path:
    """hf-libero's ``libero/libero`` folder, found without importing it (importing may prompt)."""
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "LIBERO is not installed", key="env.*.env_type",
            fix="pip install 'rlvla[libero]' (hf-libero); then `pip uninstall -y torchvision` if it was pulled in",
        )
    return Path(list(spec.submodule_search_locations)[0]) / "libero"


def default_config_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlvla" / "libero"


def write_libero_config(config_dir: str | Path | None, assets_dir: str | Path | None) -> Path:
    """Write LIBERO's config.yaml into ``config_dir`` and point ``LIBERO_CONFIG_PATH`` at it; returns the file."""
    root = libero_package_root()
    folder = Path(config_dir) if config_dir else default_config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(folder / "datasets"),
        "assets": str(Path(assets_dir) if assets_dir else root / "assets"),
    }
    path = folder / "config.yaml"
    if not path.exists() or yaml.safe_load(path.read_text()) != paths:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(yaml.safe_dump(paths))
        os.replace(tmp, path)  # atomic: parallel workers may write the same file
    os.environ["LIBERO_CONFIG_PATH"] = str(folder)
    return path


def find_assets(assets_dir: str | Path | None) -> Path | None:
    """The first of ``assets_dir``, hf-libero's package folder and its download cache holding the assets."""
    candidates = [Path(assets_dir).expanduser()] if assets_dir else []
    candidates += [libero_package_root() / "assets", Path.home() / ".cache" / "libero" / "assets"]
    for candidate in candidates:
        if all((candidate / sub).is_dir() for sub in ASSET_SUBDIRS):
            return candidate
    return None


def require_assets(assets_dir: str | Path | None) -> Path:
    found = find_assets(assets_dir)
    if found is None:
        where = assets_dir or f"{libero_package_root() / 'assets'} or ~/.cache/libero/assets"
        raise AssetError(
            f"LIBERO scene assets not found in {where} (hf-libero would download them at env creation, which "
            "needs the Hugging Face hub)",
            key="env.*.init_params.assets_dir",
            fix="run `rlvla download-assets libero --write-config <your config>` on a machine with internet "
            "(or copy the folder here) and set init_params.assets_dir to it",
        )
    return found


def import_libero(params: LiberoInitParams):
    """Write the config, choose the renderer, import hf-libero; returns (benchmark module, libero.libero)."""
    write_libero_config(params.config_dir, params.assets_dir)
    os.environ.setdefault("MUJOCO_GL", params.render_backend)
    os.environ.setdefault("PYOPENGL_PLATFORM", params.render_backend)
    import libero.libero as libero_root
    from libero.libero import benchmark

    return benchmark, libero_root


# ---------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class LiberoTask:
    """One task of a suite: its language, BDDL file and stored init states ``[N, D]``."""

    suite: str
    index: int
    language: str
    bddl_file: str
    init_states: np.ndarray


def load_suite_tasks(suite_name: str, task_ids: list[int] | None, benchmark) -> list[LiberoTask]:
    """The tasks of ``suite_name`` (``libero_130`` = the five suites concatenated), narrowed to ``task_ids``."""
    names = SUITES_130 if suite_name == "libero_130" else (suite_name,)
    tasks: list[LiberoTask] = []
    for name in names:
        suite = benchmark.get_benchmark_dict()[name]()
        for i in range(suite.get_num_tasks()):
            task = suite.get_task(i)
            tasks.append(LiberoTask(name, i, task.language, suite.get_task_bddl_file_path(i),
                                    np.asarray(suite.get_task_init_states(i))))
    if task_ids is not None:
        bad = [t for t in task_ids if not 0 <= t < len(tasks)]
        if bad:
            raise UserError(f"task_ids {bad} are outside {suite_name}'s {len(tasks)} tasks",
                            key="env.*.init_params.task_ids", fix=f"use indices 0..{len(tasks) - 1}")
        tasks = [tasks[t] for t in task_ids]
    return tasks


def state_id_to_task(state_id: int, counts: list[int]) -> tuple[int, int]:
    """Flattened reset state id -> (task position, init state index) given init-state ``counts`` per task."""
    state_id %= sum(counts)
    for position, count in enumerate(counts):
        if state_id < count:
            return position, state_id
        state_id -= count
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------- obs
def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> axis-angle ``[3]`` (robosuite's convention)."""
    w = float(np.clip(quat_xyzw[3], -1.0, 1.0))
    sin_half = math.sqrt(1.0 - w * w)
    if sin_half < 1e-8:
        return np.zeros(3)
    return np.asarray(quat_xyzw[:3]) * 2.0 * math.acos(w) / sin_half


def flip_image(image: np.ndarray) -> np.ndarray:
    """Rotate a LIBERO camera image by 180 degrees (it is rendered upside down and mirrored)."""
    return np.ascontiguousarray(image[::-1, ::-1])


def convert_obs(raw: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """robosuite obs -> (agent-view ``[H, W, 3]``, wrist ``[H, W, 3]``, state ``[8]`` float32)."""
    state = np.concatenate([raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]),
                            raw["robot0_gripper_qpos"]]).astype(np.float32)
    return flip_image(raw["agentview_image"]), flip_image(raw["robot0_eye_in_hand_image"]), state


# ---------------------------------------------------------------------------------------------- env
class LiberoVecEnv(EpisodeVecEnv):
    """B LIBERO envs in this process (one robosuite env per slot, rebuilt when its task changes)."""

    def __init__(self, num_envs: int, params: LiberoInitParams, settings: EpisodeSettings):
        self.params = params
        benchmark, self._libero_root = import_libero(params)
        self.tasks = load_suite_tasks(params.task_suite_name, params.task_ids, benchmark)
        self.counts = [len(t.init_states) for t in self.tasks]
        self.num_reset_states = sum(self.counts)
        self.assets = require_assets(params.assets_dir)
        self._libero_root._assets_path_cache = str(self.assets)  # hf-libero then never downloads
        spec = ObsSpec(image_shape=(params.camera_height, params.camera_width, 3), state_dim=STATE_DIM, has_wrist=True)
        super().__init__(num_envs, action_dim=7, obs_spec=spec, settings=settings)
        self.slots: list = [None] * num_envs
        self.slot_task: list[int] = [-1] * num_envs
        self.images = torch.zeros(num_envs, *spec.image_shape, dtype=torch.uint8)
        self.wrist = torch.zeros_like(self.images)
        self.states = torch.zeros(num_envs, STATE_DIM)
        self.instructions = [""] * num_envs

    def _make(self, task: LiberoTask):
        from libero.libero.envs import OffScreenRenderEnv

        return OffScreenRenderEnv(bddl_file_name=task.bddl_file, camera_heights=self.params.camera_height,
                                  camera_widths=self.params.camera_width)

    def _store(self, env_id: int, raw: dict) -> None:
        image, wrist, state = convert_obs(raw)
        self.images[env_id] = torch.from_numpy(image)
        self.wrist[env_id] = torch.from_numpy(wrist)
        self.states[env_id] = torch.from_numpy(state)

    def _sim_reset(self, env_ids: torch.Tensor, state_ids: torch.Tensor) -> None:
        for env_id, state_id in zip(env_ids.tolist(), state_ids.tolist(), strict=True):
            position, init_index = state_id_to_task(int(state_id), self.counts)
            task = self.tasks[position]
            if self.slot_task[env_id] != position:
                if self.slots[env_id] is not None:
                    self.slots[env_id].close()
                self.slots[env_id], self.slot_task[env_id] = self._make(task), position
            env = self.slots[env_id]
            env.seed(int(state_id))
            env.reset()
            raw = env.set_init_state(task.init_states[init_index])
            for _ in range(self.params.num_steps_wait):
                raw, _, _, _ = env.step(NOOP_ACTION)
            self._store(env_id, raw)
            self.instructions[env_id] = task.language

    def _sim_step(self, actions: torch.Tensor, active: torch.Tensor) -> SimStep:
        reward = torch.zeros(self.num_envs)
        success = torch.zeros(self.num_envs, dtype=torch.bool)
        for env_id in torch.nonzero(active).flatten().tolist():
            raw, env_reward, done, _ = self.slots[env_id].step(actions[env_id].double().numpy())
            self._store(env_id, raw)
            success[env_id] = bool(done)
            reward[env_id] = float(done)
        return SimStep(reward=reward, terminated=success.clone(), success=success)

    def _sim_obs(self) -> Obs:
        return {"main_images": self.images.clone(), "wrist_images": self.wrist.clone(),
                "states": self.states.clone(), "task_descriptions": list(self.instructions)}

    def close(self) -> None:
        super().close()
        for env in self.slots:
            if env is not None:
                env.close()
        self.slots = [None] * self.num_envs

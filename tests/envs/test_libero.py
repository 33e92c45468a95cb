"""LIBERO adapter: config writing (no prompt), suite/task/init-state mapping, image orientation, state
assembly, asset errors; a real episode when the scene assets are present (skipped otherwise, with the reason)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from rlvla_cli.config.env import LiberoEnvConfig, LiberoInitParams
from rlvla_cli.errors import AssetError, UserError

pytest.importorskip("libero", reason="hf-libero (the `libero` extra) is not installed")

from rlvla_cli.envs import libero as adapter  # noqa: E402


@pytest.fixture(scope="module")
def libero_benchmark(tmp_path_factory):
    module, _ = adapter.import_libero(LiberoInitParams(config_dir=str(tmp_path_factory.mktemp("libero_cfg"))))
    return module


def test_first_import_never_prompts(tmp_path):
    code = (
        "from rlvla_cli.config.env import LiberoInitParams\n"
        "from rlvla_cli.envs.libero import import_libero\n"
        f"bench, _ = import_libero(LiberoInitParams(config_dir={str(tmp_path)!r}, assets_dir='/data/libero'))\n"
        "print(sorted(bench.get_benchmark_dict()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LIBERO_CONFIG_PATH"}
    run = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "libero_spatial" in run.stdout and "(Y/N)" not in run.stdout
    config = (tmp_path / "config.yaml").read_text()
    assert "assets: /data/libero" in config and "init_files" in config


def test_suites_tasks_and_init_states(libero_benchmark):
    spatial = adapter.load_suite_tasks("libero_spatial", None, libero_benchmark)
    assert len(spatial) == 10 and all(t.init_states.shape[0] == 50 for t in spatial)
    assert spatial[0].language.startswith("pick up the black bowl") and spatial[0].bddl_file.endswith(".bddl")
    all_tasks = adapter.load_suite_tasks("libero_130", None, libero_benchmark)
    assert len(all_tasks) == 130 and all_tasks[0].suite == "libero_spatial" and all_tasks[-1].suite == "libero_10"
    narrowed = adapter.load_suite_tasks("libero_goal", [3, 1], libero_benchmark)
    assert [t.index for t in narrowed] == [3, 1]
    with pytest.raises(UserError, match="outside"):
        adapter.load_suite_tasks("libero_goal", [10], libero_benchmark)


def test_state_id_maps_to_task_and_init_state():
    counts = [50, 50, 20]
    assert adapter.state_id_to_task(0, counts) == (0, 0)
    assert adapter.state_id_to_task(49, counts) == (0, 49)
    assert adapter.state_id_to_task(50, counts) == (1, 0)
    assert adapter.state_id_to_task(119, counts) == (2, 19)
    assert adapter.state_id_to_task(120, counts) == (0, 0)  # wraps around


def test_images_are_rotated_180_degrees_and_state_is_assembled():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)[..., None].repeat(3, axis=-1)  # [H=2, W=3, 3]
    quarter_turn_z = np.array([0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)])
    raw = {"agentview_image": image, "robot0_eye_in_hand_image": image + 1, "robot0_eef_pos": np.array([1., 2, 3]),
           "robot0_eef_quat": quarter_turn_z, "robot0_gripper_qpos": np.array([0.04, -0.04])}
    main, wrist, state = adapter.convert_obs(raw)
    assert main[0, 0, 0] == image[-1, -1, 0] and main[-1, -1, 0] == image[0, 0, 0]  # top-left <-> bottom-right
    assert wrist[0, 0, 0] == image[-1, -1, 0] + 1 and main.flags["C_CONTIGUOUS"]
    assert state.dtype == np.float32 and state.shape == (8,)
    np.testing.assert_allclose(state, [1, 2, 3, 0, 0, math.pi / 2, 0.04, -0.04], atol=1e-6)
    np.testing.assert_allclose(adapter.quat_to_axis_angle(np.array([0.0, 0, 0, 1])), np.zeros(3))


def test_missing_assets_is_an_asset_error_naming_the_download(tmp_path):
    with pytest.raises(AssetError, match="rlvla download-assets libero"):  # a given assets_dir is the only place
        adapter.require_assets(tmp_path / "nothing_here")
    for sub in adapter.ASSET_SUBDIRS:
        (tmp_path / "assets" / sub).mkdir(parents=True)
    assert adapter.find_assets(tmp_path / "assets") == tmp_path / "assets"


def test_installed_pypi_assets_are_found_without_configuration():
    from rlvla_cli.hub.libero_assets import installed_tree

    if installed_tree() is None:
        pytest.skip("the PyPI asset packages are not installed")
    assert adapter.find_assets(None) == installed_tree() and adapter.require_assets(None) == installed_tree()


def test_render_backend_choice(monkeypatch):
    from rlvla_cli.envs import libero_render
    from rlvla_cli.errors import ConfigError

    monkeypatch.delenv("MUJOCO_GL", raising=False)
    works = {b: libero_render.probe_backend(b) is None for b in libero_render.BACKENDS}
    if not any(works.values()):
        with pytest.raises(ConfigError, match="render_backend"):
            libero_render.choose_backend("auto")
        return
    assert libero_render.choose_backend("auto") == next(b for b in libero_render.BACKENDS if works[b])
    for backend, ok in works.items():
        if ok:
            assert libero_render.choose_backend(backend) == backend
        else:  # e.g. OSMesa on the build machines: the key, the reason and the fix in one paragraph
            with pytest.raises(ConfigError, match=r"render_backend.*libosmesa6|render_backend.*EGL"):
                libero_render.choose_backend(backend)
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert libero_render.choose_backend("egl") == "osmesa"  # the environment's choice wins


def _assets_dir() -> str | None:
    configured = os.environ.get("RLVLA_LIBERO_ASSETS")
    found = adapter.find_assets(configured)
    return str(found) if found else None


@pytest.mark.slow
@pytest.mark.skipif(_assets_dir() is None, reason="LIBERO scene assets are absent (run `rlvla download-assets "
                    "libero` and set RLVLA_LIBERO_ASSETS); episodes cannot run without them")
def test_real_episode(tmp_path):
    from rlvla_cli.envs.registry import build_env

    cfg = LiberoEnvConfig(total_num_envs=2, max_episode_steps=4,
                          init_params={"assets_dir": _assets_dir(), "camera_height": 64, "camera_width": 64,
                                       "num_steps_wait": 2, "config_dir": str(tmp_path)})
    env = build_env(cfg, seed=0)
    try:
        obs, info = env.reset(reset_state_ids=torch.tensor([0, 51]))
        assert obs["main_images"].shape == (2, 64, 64, 3) and obs["wrist_images"].shape == (2, 64, 64, 3)
        assert obs["states"].shape == (2, 8) and obs["task_descriptions"][0] != obs["task_descriptions"][1]
        result = env.chunk_step(torch.zeros(2, 4, 7))
        assert result.truncations[:, -1].all() and result.infos["final_mask"].all()
    finally:
        env.close()

"""ManiSkill adapter pieces: reward modes, instructions, registration / asset / Vulkan errors, user envs
registered through init_params.extra_modules. (The VecEnv contract on PickCube-v1 is in test_contract.py.)"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from rlvla_cli.config.env import ManiSkillEnvConfig
from rlvla_cli.envs.maniskill import _is_vulkan_error
from rlvla_cli.envs.maniskill_rewards import grasp_shaping_reward, maniskill_reward_mode, step_reward
from rlvla_cli.envs.maniskill_tasks import check_assets, check_registered, default_instruction, missing_assets
from rlvla_cli.envs.registry import build_env
from rlvla_cli.errors import AssetError, UserError


def test_grasp_shaping_matches_rlinf_terms():
    success = torch.tensor([False, False, True, True])
    grasped = torch.tensor([False, True, True, False])
    prev = torch.tensor([False, True, False, False])
    reward = grasp_shaping_reward(success, grasped, prev, None)
    # 0.1 grasp + 0.1 consecutive grasp + 1.0 success-while-grasped
    assert torch.allclose(reward, torch.tensor([0.0, 0.2, 1.1, 0.0]))
    assert torch.equal(grasp_shaping_reward(success, None, prev, None), success.float())


def test_step_reward_modes():
    info = {"success": torch.tensor([True, False]), "is_grasped": torch.tensor([True, True])}
    prev = torch.tensor([False, True])
    sparse, grasped = step_reward("sparse", torch.tensor([0.3, 0.7]), info, prev)
    assert sparse.tolist() == [1.0, 0.0] and grasped.tolist() == [True, True]
    dense, _ = step_reward("normalized_dense", torch.tensor([0.3, 0.7]), info, prev)
    assert torch.allclose(dense, torch.tensor([0.3, 0.7]))
    shaped, _ = step_reward("grasp_shaping", torch.tensor([0.0, 0.0]), info, prev)
    assert torch.allclose(shaped, torch.tensor([1.1, 0.2]))
    assert maniskill_reward_mode("grasp_shaping") == "sparse" and maniskill_reward_mode("dense") == "dense"


def test_instructions():
    assert "red cube" in default_instruction("PickCube-v1")
    assert default_instruction("OpenCabinetDoor-v1") == "open cabinet door"


def test_unregistered_ids_explain_the_fix():
    import mani_skill.envs  # noqa: F401

    with pytest.raises(UserError, match="RLinf's ManiSkill fork.*extra_modules.*download-assets maniskill"):
        check_registered("PutOnPlateInScene25Main-v3")
    with pytest.raises(UserError, match="Did you mean PickCube-v1"):
        check_registered("PickCub-v1")
    check_registered("PushCube-v1")


def test_tasks_needing_assets_name_the_download():
    import mani_skill.envs  # noqa: F401

    assert missing_assets("PickCube-v1") == []
    if not missing_assets("PickSingleYCB-v1"):
        pytest.skip("YCB assets are present on this machine")
    with pytest.raises(AssetError, match="rlvla download-assets"):
        check_assets("PickSingleYCB-v1")


def test_vulkan_failures_are_recognised():
    assert _is_vulkan_error(RuntimeError("vk::createInstanceUnique: ErrorIncompatibleDriver"))
    assert _is_vulkan_error(RuntimeError("Failed to find a supported physical device"))
    assert not _is_vulkan_error(RuntimeError("shape mismatch"))


def test_missing_extra_module_is_a_user_error():
    cfg = ManiSkillEnvConfig(total_num_envs=1, init_params={"extra_modules": ["no_such_module_rlvla"]})
    with pytest.raises(UserError, match="no_such_module_rlvla"):
        build_env(cfg)


def test_user_env_registered_by_an_extra_module_uses_its_own_instruction(tmp_path, monkeypatch):
    (tmp_path / "rlvla_user_tasks.py").write_text(textwrap.dedent('''
        from mani_skill.envs.tasks.tabletop.pick_cube import PickCubeEnv
        from mani_skill.utils.registration import register_env

        @register_env("RlvlaTestPickCube-v0", max_episode_steps=50)
        class RlvlaTestPickCube(PickCubeEnv):
            def get_language_instruction(self):
                return ["lift the little red block"] * self.num_envs
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = ManiSkillEnvConfig(total_num_envs=1, max_episode_steps=3, init_params={
        "id": "RlvlaTestPickCube-v0", "extra_modules": ["rlvla_user_tasks"], "camera_width": 32,
        "camera_height": 32, "reward_mode": "grasp_shaping"})
    env = build_env(cfg)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["task_descriptions"] == ["lift the little red block"]
        result = env.chunk_step(torch.zeros(1, 3, 7))
        assert result.truncations[0, -1] and result.rewards.shape == (1, 3)
    finally:
        env.close()
        sys.modules.pop("rlvla_user_tasks", None)


def test_no_vulkan_driver_gives_the_mesa_fix():
    import os
    import subprocess

    code = ("from rlvla_cli.config.env import ManiSkillEnvConfig\n"
            "from rlvla_cli.envs.registry import build_env\n"
            "from rlvla_cli.errors import UserError\n"
            "try:\n"
            "    build_env(ManiSkillEnvConfig(total_num_envs=1, init_params={'camera_width': 32}))\n"
            "except UserError as err:\n"
            "    print('USER ERROR:', err)\n")
    env = dict(os.environ, VK_ICD_FILENAMES="/nonexistent.json", VK_DRIVER_FILES="/nonexistent.json")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert "USER ERROR: no usable Vulkan device" in run.stdout, run.stderr[-2000:]
    assert "bookworm-backports" in run.stdout and "mesa-vulkan-drivers" in run.stdout

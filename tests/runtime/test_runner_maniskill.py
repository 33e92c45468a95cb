"""ManiSkill PickCube-v1 with CPU physics trains 2 steps with the small policy (real simulator, real loop)."""

from __future__ import annotations

import pytest
from runtime_configs import small_config_dict

from rlvla_cli.commands.train import hardware_placement
from rlvla_cli.config.loader import load_config_dict
from rlvla_cli.runtime.runner import Runner

pytest.importorskip("mani_skill")


def test_pickcube_trains_two_steps(tmp_path):
    data = small_config_dict(tmp_path, "collocated", steps=2)
    data["env"]["train"] = {
        "env_type": "maniskill", "total_num_envs": 2, "max_episode_steps": 8, "max_steps_per_rollout_epoch": 8,
        "init_params": {"id": "PickCube-v1", "sim_backend": "cpu", "camera_width": 64, "camera_height": 64},
    }
    data["env"]["eval"] = {**data["env"]["train"], "use_fixed_reset_state_ids": True}
    data["actor"].update(micro_batch_size=4, global_batch_size=8)
    data["actor"]["model"].update(state_dim=9, image_size=64)
    cfg = load_config_dict(data)
    placement, offload = hardware_placement(cfg)
    try:
        result = Runner(cfg, placement, offload, console=False).run()
    except Exception as err:  # noqa: BLE001 - only a missing Vulkan device is a reason to skip
        if "vulkan" in str(err).lower():
            pytest.skip(f"no Vulkan device for SAPIEN: {err}")
        raise
    assert result.status == "finished" and result.global_step == 2
    assert result.last_metrics["perf/total_env_steps"] == 2 * 2 * 8
    assert result.last_metrics["train/skipped_steps"] == 0

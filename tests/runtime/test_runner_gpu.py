"""The loop on GPUs: one GPU collocated (offload, bf16 rollout copy, ZeRO 0 and 2) and two GPUs disaggregated
(NCCL, weight copies across devices). Run on the GPU machine: ``pytest -m gpu tests/runtime``."""

from __future__ import annotations

import pytest
import torch
from runtime_configs import small_config_dict

from rlvla_cli.commands.train import hardware_placement
from rlvla_cli.config.loader import load_config_dict
from rlvla_cli.runtime.runner import Runner

pytestmark = pytest.mark.gpu


def _gpu_config(tmp_path, placement: dict, gpus: int, stage: int, offload: bool):
    data = small_config_dict(tmp_path, "collocated", steps=2)
    data["cluster"].update(component_placement=placement, num_gpus_per_node=gpus)
    data["actor"]["deepspeed"].update(zero_stage=stage, bf16=True)
    data["actor"]["enable_offload"] = offload
    data["rollout"].update(enable_offload=offload, precision="bf16")
    data["runner"]["val_check_interval"] = 2
    return load_config_dict(data)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("stage", [0, 2])
def test_one_gpu_collocated_with_offload(tmp_path, stage):
    cfg = _gpu_config(tmp_path, {"actor,env,rollout": "all"}, 1, stage, offload=True)
    placement, offload = hardware_placement(cfg)
    assert placement.mode == "collocated" and offload == (True, True)
    runner = Runner(cfg, placement, offload, console=False)
    result = runner.run()
    assert result.status == "finished" and result.global_step == 2
    assert result.last_metrics["train/skipped_steps"] == 0
    assert "eval/success_once" in result.last_metrics


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_disaggregated(tmp_path):
    cfg = _gpu_config(tmp_path, {"actor": "0", "env,rollout": "1"}, 2, 0, offload=False)
    placement, offload = hardware_placement(cfg)
    assert placement.shares_gpu("actor", "rollout") is False and offload == (False, False)
    result = Runner(cfg, placement, offload, console=False).run()
    assert result.status == "finished" and result.global_step == 2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_two_trainer_ranks_collocated(tmp_path):
    cfg = _gpu_config(tmp_path, {"actor,env,rollout": "all"}, 2, 2, offload=True)
    placement, offload = hardware_placement(cfg)
    assert placement.actor_dp_size == 2
    result = Runner(cfg, placement, offload, console=False).run()
    assert result.status == "finished" and result.global_step == 2

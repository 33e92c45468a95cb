"""The planner on real shipped configs: refusals (OOM, offload, divisibility), offload decisions, JSON, CPU mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvla_cli.config.loader import load_config
from rlvla_cli.errors import ConfigError
from rlvla_cli.placement.memory import CUDA_CONTEXT_BYTES
from rlvla_cli.placement.planner import plan, validate_placement_rules

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GIB = 1024**3
FULL_FINETUNE = ["actor.model.is_lora=false", "actor.model.lora_path=null"]


def _cfg(name: str, *overrides: str):
    return load_config(CONFIGS / f"{name}.yaml", list(overrides))


def test_oft_7b_full_finetune_on_one_24gib_gpu_is_refused_as_oom_with_suggestions():
    cfg = _cfg("maniskill_ppo_openvlaoft_quickstart", *FULL_FINETUNE)  # actor,env,rollout: 0-0, offload on
    result = plan(cfg, 1, 1, 24 * GIB)
    assert not result.ok
    refusal = result.refusals[0]
    assert refusal.kind == "memory"
    assert "out of memory" in refusal.reason and "24.0 GiB" in refusal.reason
    # 7.50B params x 16 B (bf16 weights + grads, fp32 master + Adam m, v) = 111.7 GiB of actor state alone
    assert result.gpus[0].training["actor"] > 111 * GIB
    assert "GiB" in refusal.reason.split("is ")[1]
    assert any("actor.model.is_lora=true" in s and "predicted peak" in s for s in result.suggestions)
    assert any("zero_stage=3" in s for s in result.suggestions)


def test_oft_7b_lora_with_offload_fits_one_24gib_gpu():
    result = plan(_cfg("maniskill_ppo_openvlaoft_quickstart"), 1, 1, 24 * GIB)
    assert result.ok, result.refusals
    gpu = result.gpus[0]
    # training phase: actor (bf16 weights 14.2 GiB + LoRA grads/Adam + activations) while the rollout copy waits
    # on the CPU; rollout phase: the rollout copy while the actor waits on the CPU
    assert 16 * GIB < gpu.training_total < 24 * GIB
    assert gpu.rollout["actor"] == CUDA_CONTEXT_BYTES  # only its CUDA context stays
    assert gpu.training["rollout"] == CUDA_CONTEXT_BYTES
    assert result.offload["actor"].applied and result.offload["actor"].needed
    assert result.offload["rollout"].applied and result.offload["rollout"].needed


def test_offload_needed_but_disabled_is_refused_with_the_fix():
    cfg = _cfg("maniskill_ppo_openvlaoft_quickstart", "actor.enable_offload=false", "rollout.enable_offload=false")
    result = plan(cfg, 1, 1, 24 * GIB)
    kinds = {(r.kind, r.key) for r in result.refusals}
    assert kinds == {("offload", "actor.enable_offload"), ("offload", "rollout.enable_offload")}
    assert all(r.fix.endswith("enable_offload=true") for r in result.refusals)
    assert result.offload["actor"].describe() == "NEEDED, disabled"


def test_disaggregated_placement_needs_no_offload():
    cfg = _cfg("maniskill_ppo_openvlaoft", "actor.enable_offload=false", "rollout.enable_offload=false",
               'cluster.component_placement={"env": "0-1", "rollout": "2-5", "actor": "6-7"}')
    result = plan(cfg, 8, 1, 80 * GIB)
    assert result.placement.mode == "disaggregated"
    assert not result.offload["actor"].shares_gpu and not result.offload["rollout"].shares_gpu
    assert result.offload["actor"].describe() == "no (own GPUs)"


def test_hybrid_with_two_pipeline_stages_plans():
    cfg = _cfg("maniskill_ppo_openvlaoft", "rollout.pipeline_stage_num=2")
    result = plan(cfg, 8, 1, 80 * GIB)
    assert result.ok and result.placement.mode == "hybrid"
    assert [g.processes for g in result.gpus[:1]] == [{"env": 1, "actor": 1}]


def test_more_envs_than_divisible_is_refused():
    # env: 0-3 -> 4 env workers x 2 stages = 8; 132 envs do not split
    result = plan(_cfg("maniskill_ppo_openvlaoft", "rollout.pipeline_stage_num=2", "env.train.total_num_envs=132"),
                  8, 1, 80 * GIB)
    refusal = result.refusals[0]
    assert (refusal.kind, refusal.key) == ("divisibility", "env.train.total_num_envs")
    assert "4 env worker(s) x 2 pipeline stage(s)" in refusal.reason and "multiple of 8" in refusal.fix


def test_global_batch_not_multiple_of_micro_times_dp_is_refused():
    # micro 32 x 8 actor ranks = 256 does not divide 640
    result = plan(_cfg("maniskill_ppo_openvlaoft", "actor.micro_batch_size=32"), 8, 1, 80 * GIB)
    refusal = result.refusals[0]
    assert refusal.key == "actor.global_batch_size" and "256" in refusal.fix


def test_rollout_samples_not_whole_global_batches_is_refused():
    # 128 envs x 80/8 chunk steps x 1 epoch = 1280 samples; 960 (= 3 x 320) does not divide it
    result = plan(_cfg("maniskill_ppo_openvlaoft", "actor.global_batch_size=960"), 8, 1, 80 * GIB)
    refusal = result.refusals[0]
    assert refusal.key == "actor.global_batch_size" and "1280 samples" in refusal.reason


def test_grpo_groups_must_not_straddle_env_workers():
    cfg = _cfg("maniskill_grpo_openvla", "algorithm.group_size=16", "env.train.group_size=16",
               "env.train.total_num_envs=48", "env.eval.total_num_envs=48", "actor.global_batch_size=480",
               "actor.micro_batch_size=10",
               'cluster.component_placement={"env": "0-5", "rollout": "0-5", "actor": "6-7"}')
    result = plan(cfg, 8, 1, 80 * GIB)
    assert any(r.key == "env.train.total_num_envs" and "GRPO groups of 16" in r.reason for r in result.refusals)


def test_validate_placement_rules_raises_config_error_naming_the_key():
    cfg = _cfg("maniskill_ppo_openvlaoft", "env.train.total_num_envs=130")
    with pytest.raises(ConfigError) as info:
        validate_placement_rules(cfg, gpus_per_node=8)
    assert "`env.train.total_num_envs`" in str(info.value) and "Fix:" in str(info.value)
    validate_placement_rules(_cfg("maniskill_ppo_openvlaoft"), gpus_per_node=8)  # the shipped one passes


def test_validate_without_gpus_uses_cpu_slots(monkeypatch):
    import rlvla_cli.placement.planner as planner

    monkeypatch.setattr(planner, "detect_gpus", lambda: (0, None))
    validate_placement_rules(_cfg("maniskill_ppo_openvlaoft"))  # env 0-3 / rollout 4-7 / actor 0-7: 8 CPU slots
    with pytest.raises(ConfigError, match="actor.global_batch_size"):
        validate_placement_rules(_cfg("maniskill_ppo_openvlaoft", "actor.micro_batch_size=32"))


def test_cpu_mode_plan_has_no_gpu_memory():
    result = plan(_cfg("builtin_ppo_small"), 2, 1, None, cpu_mode=True)
    assert result.ok and result.gpus == [] and result.placement.cpu_mode


def test_json_is_complete():
    data = plan(_cfg("maniskill_ppo_openvlaoft"), 8, 1, 80 * GIB).to_dict()
    assert data["ok"] is True and data["placement"]["mode"] == "hybrid"
    assert len(data["gpus"]) == 8 and data["gpus"][0]["peak_bytes"] > 0
    assert set(data["offload"]) == {"actor", "rollout"}
    assert data["model"]["total_params"] > 7e9


def test_missing_gpu_count_is_a_user_error():
    from rlvla_cli.errors import UserError

    with pytest.raises(UserError, match="--gpus"):
        plan(_cfg("maniskill_ppo_openvlaoft"), None, None, None)


def test_every_shipped_config_plans_on_eight_80gib_gpus():
    for path in sorted(CONFIGS.glob("*.yaml")):
        result = plan(load_config(path), 8, 1, 80 * GIB)
        assert not [r for r in result.refusals if r.kind == "memory"], (path.name, result.refusals)

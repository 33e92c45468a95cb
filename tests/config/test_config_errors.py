"""A corpus of broken configs and overrides: each must raise ConfigError naming the key (never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvla_cli.config.loader import load_config
from rlvla_cli.errors import ConfigError

OPENPI = {
    "model_type": "openpi",
    "num_action_chunks": 2,
    "action_horizon": 4,
    "add_value_head": True,
    "precision": "fp32",
}

# (id, patch merged onto the built-in preset, overrides, text the message must contain)
PATCHED = [
    ("runner_epochs_zero", {"runner": {"max_epochs": 0}}, [], "runner.max_epochs"),
    ("runner_epochs_text", {"runner": {"max_epochs": "ten"}}, [], "runner.max_epochs"),
    ("runner_typo", {"runner": {"mx_epochs": 3}}, [], "did you mean `max_epochs`"),
    ("runner_max_steps_zero", {"runner": {"max_steps": 0}}, [], "max_steps"),
    ("logger_backend_typo", {"runner": {"logger": {"logger_backends": ["tensorbord"]}}}, [], "tensorboard"),
    ("swanlab_mode", {"runner": {"logger": {"swanlab_mode": "online"}}}, [], "runner.logger.swanlab_mode"),
    ("placement_component_typo", {"cluster": {"component_placement": {"actr": "all", "env,rollout": "all"}}}, [],
     "did you mean `actor`"),
    ("placement_bad_ranks", {"cluster": {"component_placement": {"actor": "0-x", "env,rollout": "all"}}}, [],
     "cluster.component_placement"),
    ("placement_missing_rollout", {"cluster": {"component_placement": {"actor,env": "all"}}}, [], "rollout"),
    ("nodes_without_hosts", {"cluster": {"num_nodes": 2}}, [], "hosts"),
    ("hosts_vs_nodes", {"cluster": {"num_nodes": 2, "hosts": ["a"]}}, [], "num_nodes"),
    ("master_port", {"cluster": {"master_port": 70000}}, [], "cluster.master_port"),
    ("adv_type_literal", {"algorithm": {"adv_type": "ppo"}}, [], "algorithm.adv_type"),
    ("gamma_range", {"algorithm": {"gamma": 1.5}}, [], "algorithm.gamma"),
    ("grpo_group_one", {"algorithm": {"adv_type": "grpo", "loss_type": "actor"}, "actor": {"model": {
        "add_value_head": False}}}, [], "group_size"),
    ("grpo_with_critic", {"algorithm": {"adv_type": "grpo", "group_size": 8},
                          "env": {"train": {"group_size": 8}}}, [], "algorithm.loss_type"),
    ("grpo_group_mismatch", {"algorithm": {"adv_type": "grpo", "loss_type": "actor", "group_size": 8},
                             "actor": {"model": {"add_value_head": False}}}, [], "env.train.group_size"),
    ("grpo_envs_not_divisible", {"algorithm": {"adv_type": "grpo", "loss_type": "actor", "group_size": 8},
                                 "env": {"train": {"group_size": 8, "total_num_envs": 12}}}, [], "total_num_envs"),
    ("group_without_grpo", {"env": {"train": {"group_size": 4}}}, [], "env.train.group_size"),
    ("critic_without_value_head", {"actor": {"model": {"add_value_head": False}}}, [], "actor.model.add_value_head"),
    ("steps_not_chunk_multiple", {"env": {"train": {"max_steps_per_rollout_epoch": 25}},
                                  "actor": {"model": {"num_action_chunks": 2}}}, [],
     "env.train.max_steps_per_rollout_epoch"),
    ("env_type_typo", {"env": {"train": {"env_type": "maniskil"}}}, [], "did you mean `maniskill`"),
    ("env_without_type", {"env": {"train": {"env_type": None}}}, [], "env_type"),
    ("model_type_typo", {"actor": {"model": {"model_type": "openvla_ofts"}}}, [], "did you mean `openvla_oft`"),
    ("action_dim_mismatch", {"actor": {"model": {"action_dim": 6}}}, [], "actor.model.action_dim"),
    ("betas_length", {"actor": {"optim": {"betas": [0.9]}}}, [], "actor.optim.betas"),
    ("betas_range", {"actor": {"optim": {"betas": [0.9, 1.5]}}}, [], "betas"),
    ("lr_negative", {"actor": {"optim": {"lr": -1}}}, [], "actor.optim.lr"),
    ("rlinf_adam_key", {"actor": {"optim": {"adam_beta1": 0.9}}}, [], "betas"),
    ("zero_stage", {"actor": {"deepspeed": {"zero_stage": 4}}}, [], "actor.deepspeed.zero_stage"),
    ("offload_param_zero2", {"actor": {"deepspeed": {"offload_param": True, "zero_stage": 2}}}, [], "zero_stage"),
    ("global_not_micro_multiple", {"actor": {"global_batch_size": 65}}, [], "actor.global_batch_size"),
    ("micro_batch_zero", {"actor": {"micro_batch_size": 0}}, [], "actor.micro_batch_size"),
    ("top_p_range", {"rollout": {"sampling": {"top_p": 1.5}}}, [], "rollout.sampling.top_p"),
    ("rollout_precision", {"rollout": {"precision": "fp64"}}, [], "rollout.precision"),
    ("openpi_lora_checkpointing", {"actor": {"model": {**OPENPI, "is_lora": True, "gradient_checkpointing": True}}},
     [], "gradient"),
    ("openpi_noise_level_with_flow_noise", {"actor": {"model": {**OPENPI, "noise_method": "flow_noise",
                                                                "noise_level": 0.9}}}, [], "noise_level"),
    ("critic_warmup_without_critic", {"algorithm": {"adv_type": "grpo", "loss_type": "actor", "group_size": 8},
                                      "env": {"train": {"group_size": 8}},
                                      "actor": {"model": {"add_value_head": False},
                                                "optim": {"critic_warmup_steps": 5}}}, [], "critic_warmup_steps"),
    ("fp16_model_bf16_deepspeed", {"actor": {"model": {"precision": "fp16"}, "deepspeed": {"bf16": True}}}, [],
     "actor.deepspeed.bf16"),
    ("bf16_training_fp32_rollout", {"actor": {"deepspeed": {"bf16": True}}}, [], "rollout.precision: bf16"),
    ("openvla_chunks", {"actor": {"model": {"model_type": "openvla", "num_action_chunks": 2,
                                            "add_value_head": True}}}, [], "actor.model.num_action_chunks"),
    ("value_levels", {"actor": {"model": {"value_type": "action_level"}}}, [], "actor.model.value_type"),
    ("eval_env_other_simulator", {"env": {"eval": {"env_type": "maniskill", "max_steps_per_rollout_epoch": 80}}}, [],
     "env.eval.env_type"),
    ("lora_path_without_lora", {"actor": {"model": {"lora_path": "adapter"}}}, [], "is_lora"),
    ("interpolation_missing", {"rollout": {"precision": "${actor.model.precisoin}"}}, [], "interpolation"),
    ("top_level_typo", {"runer": {"seed": 1}}, [], "did you mean `runner`"),
    ("override_no_equals", {}, ["runner.max_epochs"], "runner.max_epochs"),
    ("override_bad_path", {}, ["runner..seed=1"], "dotted key path"),
    ("override_typo", {}, ["runner.mx_epochs=3"], "did you mean `max_epochs`"),
    ("override_wrong_type", {}, ["runner.max_epochs=abc"], "runner.max_epochs"),
    ("override_into_value", {}, ["runner.max_epochs.x=1"], "runner.max_epochs"),
    ("override_bad_yaml", {}, ["actor.optim.betas=[0.9"], "actor.optim.betas"),
    ("override_model_type", {}, ["actor.model.model_type=openvlaa"], "did you mean `openvla`"),
    ("override_nested_typo", {}, ["env.train.init_params.imge_size=64"], "did you mean `image_size`"),
    ("override_rule", {}, ["actor.model.num_action_chunks=5"], "env.train.max_steps_per_rollout_epoch"),
    ("override_flow_placement", {}, ["cluster.component_placement={actor,env,rollout: all}"], "flow style"),
]  # fmt: skip


@pytest.mark.parametrize(("patch", "overrides", "expected"), [c[1:] for c in PATCHED], ids=[c[0] for c in PATCHED])
def test_bad_config_is_a_config_error(load_patched, patch, overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_patched(patch, overrides)
    message = str(info.value)
    assert expected in message, message
    assert info.value.exit_code == 2
    assert "Traceback" not in message and "\n" not in message.strip()


def test_corpus_is_large_enough():
    assert len(PATCHED) + len(FILES) >= 30


FILES = [
    ("yaml_syntax", "runner:\n  max_epochs: [1, 2\n  seed: 3\n", "YAML syntax error"),
    ("yaml_tab", "runner:\n\tseed: 3\n", "YAML syntax error"),
    ("top_level_list", "- runner\n- actor\n", "top level must be a mapping"),
    ("unknown_default", "defaults: [env/maniskil_pick_cube]\n", "did you mean `env/maniskill_pick_cube`"),
    ("defaults_not_list", "defaults: builtin_quickstart\n", "defaults"),
    ("defaults_entry_type", "defaults: [{a: 1}]\n", "defaults"),
    ("missing_env", "actor:\n  model: {model_type: small}\n", "env"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_bad_file_is_a_config_error(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_yaml_error_names_the_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("runner:\n  seed: 1\n  max_epochs: [1, 2\n  save_interval: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+:\d+"):
        load_config(path)


def test_missing_file_suggests_a_preset():
    with pytest.raises(ConfigError) as info:
        load_config(Path("configs/maniskill_ppo_openvlaof.yaml"))
    assert "not found" in str(info.value) and "maniskill_ppo_openvlaoft" in str(info.value)


def test_defaults_cycle(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("defaults: [b]\n")
    (tmp_path / "b.yaml").write_text("defaults: [a]\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_several_problems_are_listed(load_patched):
    with pytest.raises(ConfigError) as info:
        load_patched({"runner": {"max_epochs": 0, "seed": -1}})
    assert "runner.max_epochs" in str(info.value) and "runner.seed" in str(info.value)


def test_missing_key_fix_quotes_the_description(tmp_path: Path):
    path = tmp_path / "no_model.yaml"
    path.write_text("defaults: [builtin_quickstart]\nactor:\n  model: null\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "actor.model" in str(info.value)


def test_state_observations_need_an_image_free_small_policy():
    preset = Path(__file__).resolve().parents[2] / "configs" / "maniskill_ppo_small_pushcube_state.yaml"
    assert not load_config(preset).actor.model.use_image  # the shipped state config is consistent
    with pytest.raises(ConfigError, match="actor.model.use_image"):
        load_config(preset, ["actor.model.use_image=true"])
    with pytest.raises(ConfigError, match="obs_mode"):
        load_config(preset, ["actor.model={model_type: openvla_oft, action_dim: 7}"])


def test_bf16_training_is_fine_when_the_rollout_computes_in_bf16_too(load_patched):
    cfg = load_patched({"actor": {"deepspeed": {"bf16": True}}, "rollout": {"precision": "bf16"}})
    assert cfg.actor.deepspeed.bf16 and cfg.rollout.precision == "bf16"

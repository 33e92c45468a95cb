"""Every shipped config validates, dumps and re-loads to the same config."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvla_cli.config.loader import builtin_preset_path, dump_config, load_config

REPO = Path(__file__).resolve().parents[2]

PRESETS = sorted((REPO / "configs").glob("*.yaml"))
EXPECTED = {
    "maniskill_ppo_openvla", "maniskill_ppo_openvlaoft", "maniskill_ppo_openvlaoft_quickstart",
    "maniskill_grpo_openvla", "maniskill_grpo_openvlaoft", "libero_spatial_ppo_openpi",
    "libero_spatial_ppo_openpi_quickstart", "libero_10_ppo_openpi", "libero_10_grpo_openpi",
    "libero_10_ppo_openpi_pi05", "libero_10_grpo_openpi_pi05", "maniskill_ppo_openpi", "gsenv_ppo_openpi_pi05",
    "builtin_ppo_small", "builtin_grpo_small",
}  # fmt: skip


def test_every_recipe_is_shipped():
    assert EXPECTED <= {path.stem for path in PRESETS}


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_validates_and_round_trips(path: Path, tmp_path: Path):
    cfg = load_config(path)
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(dump_config(cfg))
    again = load_config(dumped)
    assert again == cfg
    assert dump_config(again) == dump_config(cfg)


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_partials_do_not_leak_placeholders(path: Path):
    text = dump_config(load_config(path))
    assert "${" not in text and "/path/to" not in text


def test_no_config_means_builtin_quickstart():
    cfg = load_config(None)
    assert cfg.env.train.env_type == "builtin"
    assert cfg.actor.model.model_type == "small"
    assert cfg == load_config(REPO / "configs" / "builtin_ppo_small.yaml")
    assert builtin_preset_path().is_file()


def test_preset_by_name():
    assert load_config("maniskill_ppo_openvlaoft") == load_config(REPO / "configs" / "maniskill_ppo_openvlaoft.yaml")


def test_recipe_numbers_match_rlinf():
    """Spot checks of DESIGN.md's reference recipes."""
    oft = load_config("maniskill_ppo_openvlaoft_quickstart")
    assert oft.cluster.component_placement == {"actor,env,rollout": "0-0"}
    assert (oft.env.train.total_num_envs, oft.env.train.max_steps_per_rollout_epoch, oft.env.train.rollout_epoch) == (
        8,
        80,
        1,
    )
    assert (oft.actor.micro_batch_size, oft.actor.global_batch_size) == (1, 40)
    assert (oft.actor.optim.lr, oft.actor.optim.value_lr, oft.actor.optim.clip_grad) == (1e-4, 3e-3, 10.0)
    assert oft.actor.model.is_lora and oft.actor.model.lora_path and oft.actor.model.add_value_head
    assert (oft.actor.model.num_action_chunks, oft.actor.model.action_dim, oft.actor.model.unnorm_key) == (
        8,
        7,
        "bridge_orig",
    )
    assert (oft.algorithm.reward_type, oft.algorithm.logprob_type, oft.algorithm.clip_ratio_high) == (
        "action_level",
        "token_level",
        0.28,
    )
    quick, full = load_config("libero_spatial_ppo_openpi_quickstart"), load_config("libero_spatial_ppo_openpi")
    assert (quick.env.train.rollout_epoch, full.env.train.rollout_epoch) == (2, 8)
    assert (quick.env.train.total_num_envs, full.env.train.total_num_envs) == (32, 64)
    assert (quick.actor.micro_batch_size, full.actor.micro_batch_size) == (64, 128)
    assert (quick.actor.global_batch_size, full.actor.global_batch_size) == (256, 2048)
    assert (quick.actor.optim.lr, full.actor.optim.lr) == (1e-6, 5e-6)
    assert quick.actor.enable_offload and quick.rollout.enable_offload
    assert not full.actor.enable_offload and not full.rollout.enable_offload
    assert full.actor.model.noise_level == 0.5 and full.actor.model.num_steps == 4
    assert load_config("libero_10_ppo_openpi_pi05").actor.model.num_steps == 5
    # RLinf's GRPO recipes use groups of 8; the CPU quickstart uses 4 (measured to learn faster there)
    for name, size in (("maniskill_grpo_openvlaoft", 8), ("libero_10_grpo_openpi", 8), ("builtin_grpo_small", 4)):
        grpo = load_config(name)
        assert grpo.algorithm.group_size == grpo.env.train.group_size == size
        assert grpo.algorithm.loss_type == "actor" and not grpo.actor.model.add_value_head
    gsenv = load_config("gsenv_ppo_openpi_pi05")
    assert gsenv.env.train.init_params.id == "PutCubeOnPlate-v0" and gsenv.env.train.init_params.extra_modules
    assert gsenv.actor.model.pi05


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_passes_placement_rules(path: Path):
    """What `rlvla config validate` checks beyond the schema (the planner's divisibility and rank rules)."""
    from rlvla_cli.placement.planner import validate_placement_rules

    validate_placement_rules(load_config(path))


def test_config_reference_is_up_to_date():
    from rlvla_cli.config.docs import render_reference, splice
    from rlvla_cli.config.schema import RootConfig

    doc = (REPO / "docs" / "config.md").read_text()
    assert splice(doc, render_reference(RootConfig)) == doc, "run: python scripts/gen_config_docs.py"

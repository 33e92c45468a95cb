"""`rlvla config import-rlinf`: RLinf-style recipes (tests/config/rlinf/, shaped like RLinf's published ManiSkill
OpenVLA-OFT PPO / GRPO and LIBERO pi0 recipes) become rlvla configs that validate and run RLinf's arithmetic."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlvla_cli.config.loader import load_config
from rlvla_cli.config.rlinf_import import convert_and_validate, import_rlinf, leaves

HERE = Path(__file__).resolve().parent / "rlinf"
REPO = Path(__file__).resolve().parents[2]


def _convert(name: str, tmp_path: Path):
    out = tmp_path / f"{name}_rlvla.yaml"
    result = convert_and_validate(HERE / f"{name}.yaml", out)
    assert not result.unsupported, result.unsupported
    return result, load_config(out)


def test_maniskill_ppo_openvlaoft(tmp_path):
    result, cfg = _convert("maniskill_ppo_openvlaoft", tmp_path)
    algo, model = cfg.algorithm, cfg.actor.model
    # auto_reset + bootstrap_type always: terminations bootstrap; plain mean; no dual clip / clamp (RLinf's worker)
    assert cfg.env.train.auto_reset and algo.bootstrap_type == "always" and algo.loss_agg == "masked_mean"
    assert algo.clip_ratio_c is None and algo.logprob_ratio_clamp is None and algo.normalize_advantages
    assert (algo.reward_type, algo.logprob_type, algo.clip_ratio_high) == ("action_level", "token_level", 0.28)
    assert model.model_type == "openvla_oft" and model.is_lora and model.add_value_head
    assert (model.num_action_chunks, model.unnorm_key, model.max_prompt_length) == (8, "bridge_orig", 30)
    assert cfg.actor.optim.betas == (0.9, 0.999) or list(cfg.actor.optim.betas) == [0.9, 0.999]
    assert cfg.env.train.max_steps_per_rollout_epoch == 160 and cfg.env.train.max_episode_steps == 80
    assert cfg.env.train.init_params.id == "PutOnPlateInScene25Main-v3" and cfg.env.train.init_params.sim_freq == 500
    assert cfg.env.eval.ignore_terminations and cfg.env.eval.total_num_envs == 16
    assert cfg.runner.seed == 1234 and cfg.rollout.sampling.temperature_eval == 0.6
    # every leaf of the composed recipe has a row
    statuses = {row.key: row.status for row in result.rows}
    assert statuses["actor.fsdp_config.strategy"] == "dropped" and statuses["algorithm.loss_agg_func"] == "dropped"
    assert statuses["algorithm.clip_ratio_c"] == "derived"


def test_maniskill_grpo_openvlaoft(tmp_path):
    _, cfg = _convert("maniskill_grpo_openvlaoft", tmp_path)
    algo = cfg.algorithm
    # the env file's auto_reset false stays (GRPO scores one episode); GRPO advantages unnormalised; per-episode mean
    assert not cfg.env.train.auto_reset and algo.adv_type == "grpo" and algo.group_size == 8
    assert not algo.normalize_advantages and algo.loss_agg == "episode_weighted"
    assert cfg.env.train.group_size == 8 and cfg.env.train.total_num_envs == 256


def test_libero_spatial_ppo_openpi(tmp_path):
    result, cfg = _convert("libero_spatial_ppo_openpi", tmp_path)
    algo, model = cfg.algorithm, cfg.actor.model
    # no auto_reset: nothing bootstraps, per-episode weighting
    assert not cfg.env.train.auto_reset and algo.bootstrap_type == "none" and algo.loss_agg == "episode_weighted"
    assert (algo.reward_type, algo.logprob_type, algo.update_epoch) == ("chunk_level", "chunk_level", 4)
    # openpi sub-config: renamed keys, pi0 from config_name, horizon 50, detach_critic_input from the recipe
    assert model.model_type == "openpi" and not model.pi05 and model.action_horizon == 50
    assert (model.num_action_chunks, model.num_images, model.num_steps) == (5, 2, 4)
    assert model.detach_critic_input and model.train_expert_only and model.noise_method == "flow_sde"
    assert list(cfg.actor.optim.betas) == [0.9, 0.95] and cfg.actor.optim.eps == 1e-8
    assert cfg.env.train.init_params.task_suite_name == "libero_spatial"
    assert cfg.env.train.init_params.camera_height == 256
    rows = {row.key: row for row in result.rows}
    assert rows["actor.model.openpi.num_images_in_input"].target == "actor.model.num_images"
    assert rows["actor.model.openpi.dsrl_hidden_dims"].status == "dropped"


def test_every_leaf_has_a_row(tmp_path):
    from rlvla_cli.config.rlinf_import import compose_rlinf, resolve

    result = import_rlinf(HERE / "libero_spatial_ppo_openpi.yaml")
    composed, _ = compose_rlinf(HERE / "libero_spatial_ppo_openpi.yaml", [])
    keys = {key for key, _ in leaves(resolve(composed))} | {key for key, _ in leaves(composed["hydra"], "hydra.")}
    assert keys <= {row.key for row in result.rows}


def test_defaults_without_files_use_rlvla_presets(tmp_path):
    # only the recipe, no env/ and model/ files next to it: RLinf's names are rlvla's presets
    bare = tmp_path / "libero_spatial_ppo_openpi.yaml"
    shutil.copy(HERE / "libero_spatial_ppo_openpi.yaml", bare)
    result = convert_and_validate(bare, tmp_path / "out.yaml")
    assert result.config["defaults"] == [
        "env/libero_spatial@env.train", "env/libero_spatial@env.eval", "model/pi0@actor.model"]
    cfg = load_config(tmp_path / "out.yaml")
    assert cfg.env.train.env_type == "libero" and cfg.actor.model.model_type == "openpi"
    assert cfg.algorithm.bootstrap_type == "none" and cfg.actor.model.detach_critic_input


def _rlvla(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlvla_cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_cli_writes_and_prints_the_table(tmp_path):
    out = tmp_path / "oft.yaml"
    result = _rlvla("config", "import-rlinf", str(HERE / "maniskill_ppo_openvlaoft.yaml"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "algorithm.bootstrap_type" in result.stdout and "dropped" in result.stdout and "OK" in result.stdout
    assert yaml.safe_load(out.read_text())["algorithm"]["bootstrap_type"] == "always"


@pytest.mark.parametrize("patch,key", [
    ({"noise_anneal": True}, "noise_anneal"),
    ({"noise_method": "flow_cps"}, "noise_method"),
    ({"chunk_critic_input": True}, "chunk_critic_input"),
])
def test_cli_refuses_unmappable_keys(tmp_path, patch, key):
    folder = tmp_path / "recipe"
    shutil.copytree(HERE, folder)
    recipe = yaml.safe_load((folder / "libero_spatial_ppo_openpi.yaml").read_text())
    recipe["actor"]["model"]["openpi"].update(patch)
    (folder / "libero_spatial_ppo_openpi.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out.yaml"
    result = _rlvla("config", "import-rlinf", str(folder / "libero_spatial_ppo_openpi.yaml"), "-o", str(out))
    assert result.returncode == 2 and not out.exists()
    assert f"actor.model.openpi.{key}" in result.stderr and "Traceback" not in result.stderr
    assert "unsupported" in result.stdout

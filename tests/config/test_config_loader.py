"""`defaults:` composition, `${a.b}` interpolation, typed overrides and the eval-env inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvla_cli.config.loader import compose_file, dump_config, load_config
from rlvla_cli.config.merge import deep_merge
from rlvla_cli.config.overrides import parse_override
from rlvla_cli.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_merge_in_order_then_own_keys(tmp_path: Path):
    write(tmp_path / "a.yaml", "runner: {seed: 1, max_epochs: 5}\n")
    write(tmp_path / "b.yaml", "runner: {seed: 2}\n")
    main = write(tmp_path / "main.yaml", "defaults: [a, b.yaml]\nrunner: {max_epochs: 7}\n")
    assert compose_file(main, ()) == {"runner": {"seed": 2, "max_epochs": 7}}


def test_defaults_at_target_and_nested_includes(tmp_path: Path):
    write(tmp_path / "parts" / "inner.yaml", "seed: 9\n")
    write(tmp_path / "parts" / "outer.yaml", "defaults: [inner]\nmax_epochs: 3\n")  # relative to parts/
    main = write(tmp_path / "main.yaml", "defaults: [parts/outer@runner]\n")
    assert compose_file(main, ()) == {"runner": {"seed": 9, "max_epochs": 3}}


def test_defaults_fall_back_to_shipped_presets(tmp_path: Path):
    main = write(
        tmp_path / "mine.yaml",
        "defaults: [builtin_quickstart, env/builtin_reach@env.train]\nenv:\n  train: {total_num_envs: 8}\n",
    )
    cfg = load_config(main)
    assert cfg.env.train.total_num_envs == 8 and cfg.env.train.env_type == "builtin"


def test_a_new_kind_replaces_the_section_instead_of_mixing(tmp_path: Path):
    main = write(
        tmp_path / "main.yaml",
        "defaults: [builtin_quickstart, env/maniskill_pick_cube@env.train]\nenv:\n  eval: {env_type: maniskill}\n",
    )
    cfg = load_config(main)
    assert cfg.env.train.init_params.id == "PickCube-v1"
    assert cfg.env.eval.init_params.id == "PickCube-v1"  # eval inherits the train keys it does not set


def test_placement_is_replaced_whole_not_merged():
    merged = deep_merge(
        {"cluster": {"component_placement": {"actor": "0-7", "env": "0-3", "rollout": "4-7"}, "num_nodes": 1}},
        {"cluster": {"component_placement": {"actor,env,rollout": "all"}}},
    )
    assert merged["cluster"] == {"component_placement": {"actor,env,rollout": "all"}, "num_nodes": 1}


def test_interpolation_follows_overrides(tmp_path: Path):
    main = write(
        tmp_path / "main.yaml",
        "defaults: [builtin_quickstart]\nrunner:\n  logger: {experiment_name: 'seed_${runner.seed}'}\n",
    )
    assert load_config(main).runner.logger.experiment_name == "seed_1234"
    assert load_config(main, ["runner.seed=7"]).runner.logger.experiment_name == "seed_7"


def test_interpolation_of_environment_variables(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RLVLA_TEST_RUNS", "/data/runs")
    main = write(
        tmp_path / "m.yaml",
        "defaults: [builtin_quickstart]\nrunner:\n  logger: {log_path: '${oc.env:RLVLA_TEST_RUNS}'}\n",
    )
    assert load_config(main).runner.logger.log_path == "/data/runs"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a.b=8", 8),
        ("a.b=1e-4", 1e-4),
        ("a.b=1.0e-4", 1e-4),
        ("a.b=true", True),
        ("a.b=null", None),
        ("a.b=", None),
        ("a.b=[0.9, 0.95]", [0.9, 0.95]),
        ("a.b=hello world", "hello world"),
        ("a.b='0-3'", "0-3"),
        ("a.b=x=y", "x=y"),
    ],
)
def test_override_values_are_yaml(text: str, value):
    override = parse_override(text)
    assert override.parts == ("a", "b") and override.value == value


def test_overrides_are_typed_by_the_schema():
    cfg = load_config(
        None,
        [
            "actor.optim.lr=1e-4",
            "actor.optim.betas=[0.9,0.95]",
            "runner.max_epochs=3",
            "runner.logger.logger_backends=[tensorboard,swanlab]",
            "cluster.component_placement.actor,env,rollout=0-0",
            "rollout.sampling.do_sample=false",
        ],
    )
    assert cfg.actor.optim.lr == 1e-4 and isinstance(cfg.actor.optim.lr, float)
    assert cfg.actor.optim.betas == (0.9, 0.95)
    assert cfg.runner.max_epochs == 3
    assert cfg.runner.logger.logger_backends == ["tensorboard", "swanlab"]
    assert cfg.cluster.component_placement == {"actor,env,rollout": "0-0"}
    assert cfg.rollout.sampling.do_sample is False


def test_override_switching_model_type_starts_the_section_afresh():
    cfg = load_config(
        None,
        ["actor.model.model_type=openvla_oft", "actor.model.num_action_chunks=2", "actor.model.add_value_head=true"],
    )
    assert cfg.actor.model.model_type == "openvla_oft" and cfg.actor.model.num_action_chunks == 2


def test_eval_defaults_to_train(tmp_path: Path):
    main = write(tmp_path / "m.yaml", "defaults: [builtin_quickstart]\nenv:\n  eval: null\n")
    cfg = load_config(main)
    assert cfg.env.eval == cfg.env.train


def test_dump_is_complete_and_reloads(tmp_path: Path):
    cfg = load_config(None, ["runner.seed=5", "actor.optim.betas=[0.8,0.9]"])
    text = dump_config(cfg)
    assert "defaults" not in text and "betas: [0.8, 0.9]" in text
    again = load_config(write(tmp_path / "resolved.yaml", text))
    assert again == cfg


def test_empty_file_is_missing_required_sections(tmp_path: Path):
    with pytest.raises(ConfigError, match="required key is missing"):
        load_config(write(tmp_path / "empty.yaml", ""))


def test_directory_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)

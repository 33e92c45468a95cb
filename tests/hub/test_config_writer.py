"""--write-config: dotted keys land in the YAML file, everything else in it stays."""

from __future__ import annotations

import pytest
import yaml

from rlvla_cli.errors import ConfigError
from rlvla_cli.hub.config_writer import write_config_keys


def test_keys_are_merged_and_comments_kept(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "defaults: [quickstart]  # base preset\n"
        "actor:\n"
        "  model:\n"
        "    model_type: openvla_oft\n"
        "    lora_rank: 32  # as RLinf\n"
        "env:\n"
        "  train: {total_num_envs: 8}\n"
    )
    kept = write_config_keys(
        path,
        {"actor.model.model_path": "/m/base", "actor.model.is_lora": True, "env.eval.init_params.assets_dir": "/a"},
    )
    text = path.read_text()
    assert kept and "# base preset" in text and "# as RLinf" in text
    tree = yaml.safe_load(text)
    assert tree["defaults"] == ["quickstart"]
    assert tree["actor"]["model"] == {
        "model_type": "openvla_oft", "lora_rank": 32, "model_path": "/m/base", "is_lora": True
    }  # fmt: skip
    assert tree["env"]["train"] == {"total_num_envs": 8}
    assert tree["env"]["eval"]["init_params"]["assets_dir"] == "/a"


def test_missing_file_is_created(tmp_path):
    path = tmp_path / "sub" / "new.yaml"
    write_config_keys(path, {"actor.model.model_path": "/m"})
    assert yaml.safe_load(path.read_text()) == {"actor": {"model": {"model_path": "/m"}}}


def test_scalar_in_the_way_is_a_config_error(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("actor: 3\n")
    with pytest.raises(ConfigError, match="`actor` is int"):
        write_config_keys(path, {"actor.model.model_path": "/m"})
    assert path.read_text() == "actor: 3\n"  # untouched


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("actor: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        write_config_keys(path, {"actor.model.model_path": "/m"})

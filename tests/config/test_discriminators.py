"""An unknown discriminator value (issue 19) is named with its key, the choices and the closest one, before a
`${...}` that refers into the (cleared) section fails."""

from __future__ import annotations

import pytest

from rlvla_cli.config.loader import load_config, load_config_dict
from rlvla_cli.errors import ConfigError

OFT = "configs/maniskill_ppo_openvlaoft.yaml"  # rollout.precision is `${actor.model.precision}` there


def _message(path, overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_unknown_model_type_named_not_the_interpolation():
    text = _message(OFT, ["actor.model.model_type=gpt5"])
    assert "`actor.model.model_type`" in text and "gpt5" in text
    assert "small, openvla, openvla_oft, openpi" in text
    assert "closest" in text
    assert "rollout.precision" not in text and "interpolation" not in text
    assert text.startswith("override `actor.model.model_type=gpt5`")


def test_unknown_env_type_did_you_mean():
    text = _message(OFT, ["env.train.env_type=manskill"])
    assert "`env.train.env_type`" in text and "did you mean `maniskill`" in text
    assert "builtin, maniskill, libero" in text


def test_unknown_discriminator_in_a_file_names_the_file():
    data = {"actor": {"model": {"model_type": "open_vla"}}}
    with pytest.raises(ConfigError) as info:
        load_config_dict(data, source="my.yaml")
    text = str(info.value)
    assert text.startswith("my.yaml:") and "`actor.model.model_type`" in text and "did you mean" in text


def test_valid_discriminators_pass():
    assert load_config(OFT, ["env.eval.env_type=maniskill"]).env.eval.env_type == "maniskill"

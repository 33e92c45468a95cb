"""Every ``algorithm.*`` key is read by code, and the config's cross-field rules hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

import rlvla_cli
from rlvla_cli.config.algorithm import AlgorithmConfig

PACKAGE = Path(rlvla_cli.__file__).parent


def _source_outside_config() -> str:
    files = [p for p in PACKAGE.rglob("*.py") if "config" not in p.relative_to(PACKAGE).parts]
    return "\n".join(p.read_text() for p in files)


@pytest.mark.parametrize("key", sorted(AlgorithmConfig.model_fields))
def test_every_key_is_consumed(key):
    # attribute access on a config object (cfg.gamma, algo_cfg.gamma, cfg.algorithm.gamma) outside config/
    pattern = rf"\b\w*(cfg|config|algorithm)\.{key}\b"
    assert re.search(pattern, _source_outside_config()), f"algorithm.{key} is read nowhere"


def test_every_field_is_documented():
    missing = [name for name, f in AlgorithmConfig.model_fields.items() if not f.description]
    assert not missing


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"loss_type": "actor"}, "needs a value function"),
        ({"adv_type": "grpo", "loss_type": "actor"}, "group_size >= 2"),
        ({"logprob_type": "chunk_level", "reward_type": "action_level"}, "per-action advantages"),
        ({"filter_rewards": True, "rewards_lower_bound": 0.9, "rewards_upper_bound": 0.1}, "lower_bound"),
        ({"clip_ratio_c": 0.5}, "greater than 1"),
        ({"reward_type": "token_level"}, "reward_type"),
        ({"gamma_typo": 0.9}, "Extra inputs"),
    ],
)
def test_invalid_combinations_are_rejected(fields, message):
    with pytest.raises(ValidationError, match=message):
        AlgorithmConfig(**fields)


def test_recipe_values_are_accepted():
    oft = AlgorithmConfig(reward_type="action_level", logprob_type="token_level", clip_ratio_high=0.28)
    assert oft.clip_ratio_high == 0.28
    grpo = AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=8, filter_rewards=True, clip_ratio_c=None)
    assert grpo.clip_ratio_c is None

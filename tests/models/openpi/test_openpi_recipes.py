"""The shipped pi0 / pi0.5 presets and catalogue entries run each checkpoint as RLinf's published recipe does.

Expected values, from RLinf (RLinf/RLinf, ``rlinf/models/embodiment/openpi/dataconfig/__init__.py`` TrainConfigs
and ``examples/embodiment/config/*openpi*.yaml``): pi0_libero ``Pi0Config()`` (openpi's default action_horizon
50); pi05_libero ``Pi0Config(pi05=True, action_horizon=10, discrete_state_input=False)``; the ManiSkill YAMLs set
``openpi.action_horizon: 8``; pi05_gsenv / pi0(5)_metaworld / pi0(5)_calvin use action_horizon 5; every pi0.5
TrainConfig of those recipes sets ``discrete_state_input=False``; libero_10_grpo_openpi_pi05.yaml uses 4 steps.
"""

from __future__ import annotations

import pytest

from rlvla_cli.config.loader import load_config
from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.hub.catalogue import catalogue_entries

# preset -> (pi05, action_horizon, num_action_chunks, discrete_state_input, num_steps)
PRESET_RECIPES = {
    "libero_spatial_ppo_openpi": (False, 50, 5, False, 4),
    "libero_spatial_ppo_openpi_quickstart": (False, 50, 5, False, 4),
    "libero_10_ppo_openpi": (False, 50, 10, False, 4),
    "libero_10_grpo_openpi": (False, 50, 10, False, 4),
    "maniskill_ppo_openpi": (False, 8, 5, False, 4),
    "libero_10_ppo_openpi_pi05": (True, 10, 10, False, 5),
    "libero_10_grpo_openpi_pi05": (True, 10, 10, False, 4),
    "gsenv_ppo_openpi_pi05": (True, 5, 5, False, 5),
}


@pytest.mark.parametrize("preset", sorted(PRESET_RECIPES))
def test_preset_matches_rlinf_recipe(preset):
    model = load_config(preset).actor.model
    assert isinstance(model, OpenPIModelConfig)
    got = (model.pi05, model.action_horizon, model.num_action_chunks, model.discrete_state_input, model.num_steps)
    assert got == PRESET_RECIPES[preset]


# catalogue family (name up to the simulator) -> action_horizon of RLinf's recipe
CATALOGUE_HORIZONS = {
    "pi0-libero": 50, "pi0-maniskill": 8, "pi0-metaworld": 5, "pi0-calvin": 5,
    "pi05-libero": 10, "pi05-maniskill": 8, "pi05-metaworld": 5, "pi05-calvin": 5, "pi05-gsenv": 5,
}  # fmt: skip
OPENPI_ENTRIES = [e for e in catalogue_entries() if e.settings.get("actor.model.model_type") == "openpi"]


def test_catalogue_lists_rlinf_pi_models():
    assert len(OPENPI_ENTRIES) == 22  # 2 pi0 LIBERO + 3 x 3 pi0 + 1 pi0.5 LIBERO + 3 x 3 pi0.5 + 1 GSEnv


@pytest.mark.parametrize("entry", OPENPI_ENTRIES, ids=lambda e: e.name)
def test_catalogue_entry_settings_match_rlinf_recipe(entry):
    settings = entry.settings
    pi05 = entry.name.startswith("pi05")
    assert settings["actor.model.pi05"] is pi05
    assert settings["actor.model.action_horizon"] == CATALOGUE_HORIZONS["-".join(entry.name.split("-")[:2])]
    if pi05:
        assert settings["actor.model.discrete_state_input"] is False
    else:
        assert "actor.model.discrete_state_input" not in settings  # pi0 never puts the state in the prompt
    model = OpenPIModelConfig(**{key.removeprefix("actor.model."): value for key, value in settings.items()})
    assert model.discrete_state_input is False


def test_model_default_follows_openpi():
    """openpi's Pi0Config.__post_init__: discrete_state_input defaults to pi05 (used by openpi's pi05_droid /
    pi05_aloha); only the recipes above turn it off, explicitly."""
    assert OpenPIModelConfig(pi05=True).discrete_state_input is True
    assert OpenPIModelConfig(pi05=False).discrete_state_input is False

"""Shared helpers for config tests: the built-in preset as a mapping, and loading patched copies of it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from rlvla_cli.config.loader import builtin_preset_path, load_config_dict
from rlvla_cli.config.merge import deep_merge


@pytest.fixture
def base_data() -> dict[str, Any]:
    """The built-in quickstart config as a plain mapping."""
    return yaml.safe_load(builtin_preset_path().read_text())


def _load_patched(patch: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()):
    data = yaml.safe_load(builtin_preset_path().read_text())
    return load_config_dict(deep_merge(data, patch), list(overrides), source="patched.yaml")


@pytest.fixture
def load_patched():
    """``load_patched(patch, overrides=())``: validate the built-in preset with ``patch`` merged on top
    (a section whose env_type / model_type changes is replaced)."""
    return _load_patched

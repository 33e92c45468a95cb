"""Fixtures for the tiny pi0 / pi0.5 tests."""

from __future__ import annotations

import pytest
import torch
from openpi_helpers import tiny_config

from rlvla_cli.models.registry import build_policy


@pytest.fixture
def build():
    """build(**overrides) -> a tiny OpenPIPolicy from the registry, seeded."""

    def _build(**overrides):
        torch.manual_seed(0)
        return build_policy(tiny_config(**overrides))

    return _build

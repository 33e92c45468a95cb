"""pi0 / pi0.5 (openpi) policies: PaliGemma + Gemma action expert, flow-SDE / flow-noise RL sampling.

Importing this package registers the ``openpi`` builder with ``rlvla_cli.models.registry``
(the registry imports it lazily when ``model_type: openpi`` is built).
"""

from __future__ import annotations

from rlvla_cli.models.openpi.build import (
    OPENPI_LORA_TARGETS,
    build_openpi_policy,
    count_openpi_parameters,
)
from rlvla_cli.models.openpi.checkpoint import load_openpi_checkpoint, openpi_key_to_ours, save_openpi_checkpoint
from rlvla_cli.models.openpi.policy import OpenPIPolicy
from rlvla_cli.models.openpi.presets import PRESETS, get_preset
from rlvla_cli.models.openpi.saving import save_openpi_policy

__all__ = [
    "OPENPI_LORA_TARGETS",
    "OpenPIPolicy",
    "PRESETS",
    "build_openpi_policy",
    "count_openpi_parameters",
    "get_preset",
    "load_openpi_checkpoint",
    "openpi_key_to_ours",
    "save_openpi_checkpoint",
    "save_openpi_policy",
]

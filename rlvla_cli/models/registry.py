"""Build a policy from ``actor.model``: ``build_policy(model_cfg, device=...)``, registered by ``model_type``.

An architecture module registers its builder at import with ``@register_policy("name")``; the modules of the
known names are imported lazily, so ``import rlvla_cli.models.registry`` stays light (no transformers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlvla_cli.errors import ConfigError
from rlvla_cli.models.base import VLAPolicy

PolicyBuilder = Callable[[Any, str], VLAPolicy]

_BUILDERS: dict[str, PolicyBuilder] = {}
_MODULES = {
    "small": "rlvla_cli.models.small",
    "openvla": "rlvla_cli.models.openvla",
    "openvla_oft": "rlvla_cli.models.openvla_oft",
    "openpi": "rlvla_cli.models.openpi",
}


def register_policy(model_type: str) -> Callable[[PolicyBuilder], PolicyBuilder]:
    """Decorator: ``builder(model_cfg, device) -> VLAPolicy`` for ``model_type``. Duplicate names raise."""

    def wrap(builder: PolicyBuilder) -> PolicyBuilder:
        if model_type in _BUILDERS and _BUILDERS[model_type] is not builder:
            raise ValueError(f"policy builder {model_type!r} is already registered")
        _BUILDERS[model_type] = builder
        return builder

    return wrap


def _builder(model_type: str) -> PolicyBuilder:
    if model_type not in _BUILDERS and model_type in _MODULES:
        importlib.import_module(_MODULES[model_type])
    if model_type not in _BUILDERS:
        known = sorted(set(_BUILDERS) | set(_MODULES))
        raise ConfigError(f"unknown model_type {model_type!r}", key="actor.model.model_type",
                          fix=f"use one of {known}")
    return _BUILDERS[model_type]


def build_policy(model_cfg: Any, *, device: str | torch.device = "cpu") -> VLAPolicy:
    """The policy ``model_cfg`` describes, on ``device``, in ``model_cfg.precision`` (the value head stays
    fp32). Loads ``model_path`` / ``lora_path`` when set; otherwise random weights of the ``size`` preset."""
    return _builder(model_cfg.model_type)(model_cfg, str(device))


def load_policy(model_cfg: Any, directory: str | Path, *, device: str | torch.device = "cpu") -> VLAPolicy:
    """Read back what ``VLAPolicy.save_pretrained(directory)`` wrote: a LoRA adapter directory (contains
    ``adapter_config.json``; the base weights still come from ``model_cfg.model_path``) or full weights."""
    d = Path(directory)
    if (d / "adapter_config.json").is_file():
        cfg = model_cfg.model_copy(update={"is_lora": True, "lora_path": str(d)})
    else:
        cfg = model_cfg.model_copy(update={"model_path": str(d), "lora_path": None})
    return build_policy(cfg, device=device)


def count_parameters(model_cfg: Any) -> dict[str, int]:
    """Parameter counts of the configured policy without allocating it (built on the meta device with
    ``accelerate.init_empty_weights``; only the config.json of ``model_path`` is read, never weights):
    ``{"total", "trainable", "value_head"}``. With LoRA, ``trainable`` counts adapters + value head."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        policy = build_policy(model_cfg, device="meta")
    value = sum(p.numel() for p in policy.value_head_parameters())
    return {
        "total": sum(p.numel() for p in policy.parameters()),
        "trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        "value_head": value,
    }

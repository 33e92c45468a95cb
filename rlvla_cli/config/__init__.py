"""Typed configuration: pydantic models, YAML loading with `defaults:` and overrides.

Imports are lazy so that ``rlvla_cli.config.base`` (used by every sub-model) never drags in the whole
schema: ``from rlvla_cli.config import load_config, RootConfig`` still works.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "RootConfig": "rlvla_cli.config.schema",
    "load_config": "rlvla_cli.config.loader",
    "load_config_dict": "rlvla_cli.config.loader",
    "dump_config": "rlvla_cli.config.loader",
    "builtin_preset_path": "rlvla_cli.config.loader",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlvla_cli.config' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)

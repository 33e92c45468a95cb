"""Recursive mapping merge shared by `defaults:` composition and the eval-env inheritance."""

from __future__ import annotations

import copy
from typing import Any

# Mappings that are one value, not a section: a later file replaces them whole (placements must not mix).
REPLACED_WHOLE = frozenset({"component_placement"})
# A section whose discriminator changes (another simulator or model) starts afresh instead of mixing keys.
DISCRIMINATORS = ("env_type", "model_type")


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` wins; nested mappings merge key by key, everything else (lists too) is replaced. Inputs stay intact.

    Mappings under a key in ``REPLACED_WHOLE``, and mappings whose ``env_type`` / ``model_type`` differs from the
    base's, are replaced, not merged.
    """
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and _mergeable(key, out[key], value):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _mergeable(key: str, base: dict[str, Any], top: dict[str, Any]) -> bool:
    if key in REPLACED_WHOLE:
        return False
    return all(name not in top or name not in base or top[name] == base[name] for name in DISCRIMINATORS)

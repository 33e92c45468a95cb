"""peft LoRA adapters: their config, whether they belong to the base, and whether their tensors fit it.

The tensor check mirrors ``models/lora.py: load_adapter`` (peft's on-disk names ``base_model.model.<path>.
lora_A.weight`` -> the injected ``<path>.lora_A.default.weight``) on shape-only tensors of a meta-device policy
with the adapter's own ``LoraConfig`` injected by the builder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvla_cli.checkpoints.metadata import TensorMeta, safetensors_metadata
from rlvla_cli.checkpoints.report import Problem

ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."
_ADAPTER_NAME = "default"
_SHOW = 3


def adapter_param_name(key: str) -> str:
    """peft's stored name -> the parameter name inside the module the adapter was injected into."""
    name = key[len(_PEFT_PREFIX):] if key.startswith(_PEFT_PREFIX) else key
    for part in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"):
        name = name.replace(f".{part}.weight", f".{part}.{_ADAPTER_NAME}.weight")
    return name


def _short_name(name_or_path: str) -> str:
    """``openvla/openvla-7b`` / ``/data/models/openvla-7b/`` -> ``openvla-7b`` (lower case)."""
    return Path(str(name_or_path).rstrip("/")).name.lower()


def base_names(base_dir: Path) -> set[str]:
    """Names the base directory answers to: its folder name, a hub cache's repo name
    (``models--org--name/snapshots/<hash>``) and the ``_name_or_path`` in its config.json."""
    names = {_short_name(str(base_dir.resolve()))}
    if base_dir.resolve().parent.name == "snapshots":
        names.add(base_dir.resolve().parent.parent.name.split("--")[-1].lower())
    try:
        saved = json.loads((base_dir / "config.json").read_text()).get("_name_or_path")
    except (OSError, json.JSONDecodeError, AttributeError):
        saved = None
    if saved:
        names.add(_short_name(saved))
    return names


def base_matches(adapter_config: dict, base_dir: Path) -> bool | None:
    """True / False: does ``base_model_name_or_path`` name ``base_dir``; None when the adapter names no base."""
    wanted = adapter_config.get("base_model_name_or_path")
    if not wanted:
        return None
    return _short_name(wanted) in base_names(base_dir)


def adapter_summary(adapter_dir: Path) -> tuple[dict[str, Any], dict[str, TensorMeta]]:
    """(adapter_config.json with its tensor count, the adapter tensors' metadata)."""
    from rlvla_cli.models.lora import read_adapter_config

    config = read_adapter_config(adapter_dir)
    path = adapter_dir / ADAPTER_WEIGHTS
    tensors = {m.name: m for m in safetensors_metadata(path)} if path.is_file() else {}
    targets = config.get("target_modules")
    summary = {
        "r": config.get("r"), "lora_alpha": config.get("lora_alpha"),
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "base_model_name_or_path": config.get("base_model_name_or_path"),
        "peft_type": config.get("peft_type"), "tensors": len(tensors),
    }
    return summary, tensors


def lora_module(policy, model_type: str):
    """The module the builders inject adapters into (and ``load_adapter`` fills)."""
    if model_type in ("openvla", "openvla_oft"):
        return policy.vla
    if model_type == "openpi":
        from rlvla_cli.models.openpi.build import lora_module as openpi_lora_module

        return openpi_lora_module(policy)
    return policy


def fit_problems(module, tensors: dict[str, TensorMeta], adapter_dir: Path) -> list[Problem]:
    """Missing / unexpected / mis-shaped adapter tensors against the injected ``module`` (as ``load_adapter``)."""
    own = {n: tuple(p.shape) for n, p in module.named_parameters() if "lora_" in n}
    loaded = {adapter_param_name(k): m for k, m in tensors.items()}
    missing = sorted(set(own) - set(loaded))
    unexpected = sorted(set(loaded) - set(own))
    bad = [f"{n}: adapter {loaded[n].shape} vs model {own[n]}" for n in sorted(loaded)
           if n in own and tuple(loaded[n].shape) != own[n]]
    if not (missing or unexpected or bad):
        return []
    return [Problem(
        f"the adapter does not fit this model: {len(missing)} missing {missing[:_SHOW]}, {len(unexpected)} "
        f"unexpected {unexpected[:_SHOW]}, {len(bad)} shape mismatches {bad[:_SHOW]}",
        file=str(adapter_dir / ADAPTER_WEIGHTS), key="actor.model.lora_path",
        fix="use the adapter with the base and model config it was trained with (see its adapter_config.json)",
    )]

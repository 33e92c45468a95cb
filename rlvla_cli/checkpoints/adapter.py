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


def pairing(adapter_config: dict, base_dir: Path):
    """The loader's own pairing of an adapter with its base (``openvla_files.adapter_base_pairing``: match /
    mismatch / unknown / unnamed)."""
    from rlvla_cli.models.openvla_files import adapter_base_pairing

    try:
        base_config = json.loads((base_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        base_config = {}
    return adapter_base_pairing(adapter_config, base_dir, base_config if isinstance(base_config, dict) else {})


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


def adapter_plan(policy, model_type: str, keys: list[str]):
    """The loader's plan for the stored adapter names: OpenVLA's ``adapter_key_plan`` (drops adapters on modules
    OpenVLA never runs, routes head adapters elsewhere), else every name under ``peft_param_name``."""
    from rlvla_cli.models.lora import default_adapter_plan

    if model_type in ("openvla", "openvla_oft"):
        from rlvla_cli.models.openvla_files import adapter_key_plan

        return adapter_key_plan(keys, policy.vla.dims)
    return default_adapter_plan(keys)


def fit_problems(policy, module, plan, tensors: dict[str, TensorMeta], adapter_dir: Path) -> list[Problem]:
    """Missing / unexpected / mis-shaped adapter tensors against the injected ``module`` (as ``load_adapter``),
    and head adapters (``plan.elsewhere``) whose head the policy lacks."""
    from rlvla_cli.models.lora import adapter_fit

    # the loader's own rule (models/lora.py adapter_fit); B starts at zero unless the config says init False
    b_zero = getattr(getattr(policy, "lora_config", None), "init_lora_weights", True) is not False
    fit = adapter_fit({n: tuple(p.shape) for n, p in module.named_parameters()},
                      {name: tuple(tensors[key].shape) for key, name in plan.load.items()}, lambda _: b_zero)
    missing, unexpected, bad = fit.missing, fit.unexpected, fit.mismatched
    modules = dict(policy.named_modules())
    homeless = sorted({n.split(".lora_")[0] for n in plan.elsewhere.values()} - set(modules))
    problems = []
    if missing or unexpected or bad:
        problems.append(Problem(
            f"the adapter does not fit this model: {len(missing)} missing {missing[:_SHOW]}, {len(unexpected)} "
            f"unexpected {unexpected[:_SHOW]}, {len(bad)} shape mismatches {bad[:_SHOW]}",
            file=str(adapter_dir / ADAPTER_WEIGHTS), key="actor.model.lora_path",
            fix="use the adapter with the base and model config it was trained with (see its adapter_config.json)"))
    if homeless:
        problems.append(Problem(
            f"adapter tensors for {homeless[:_SHOW]} fit no head of this model",
            file=str(adapter_dir / ADAPTER_WEIGHTS), key="actor.model.lora_path",
            fix="enable the head the adapter was trained with (use_proprio / add_value_head)"))
    return problems

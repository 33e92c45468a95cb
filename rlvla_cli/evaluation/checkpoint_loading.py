"""`rlvla eval --checkpoint C`: find the weights and the config that belong to C, and build the policy.

C may be
- a run directory (``<run>/checkpoints/global_step_<N>/``): its newest checkpoint;
- one checkpoint directory (``trainer_state.json``): its ``policy/`` weights and ``config.yaml``;
- a Hugging Face layout model directory (``config.json`` + safetensors): used as ``actor.model.model_path``;
- a LoRA adapter (``adapter_config.json``): used as ``actor.model.lora_path`` on the base in ``model_path``
  (from the config, else the adapter's ``base_model_name_or_path`` when that is a local directory).
Weights saved by rlvla carry their model config (``config.json`` -> ``rlvla_model``); it replaces
``actor.model`` so the architecture always matches the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlvla_cli.errors import AssetError, UserError

if TYPE_CHECKING:
    from rlvla_cli.config.model_base import ModelConfigBase
    from rlvla_cli.config.schema import RootConfig

Kind = Literal["checkpoint", "hf_model", "lora"]


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """kind: what C turned out to be; weights: the directory handed to ``load_policy``; config_file: the config
    saved with a run checkpoint (None otherwise); step: its training step (None otherwise)."""

    kind: Kind
    weights: Path
    config_file: Path | None = None
    step: int | None = None


def _is_weights_dir(path: Path) -> bool:
    if (path / "adapter_config.json").is_file():
        return True
    return any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file()


def resolve_checkpoint(path: str | Path) -> ResolvedCheckpoint:
    """Classify ``--checkpoint`` (see the module docstring); raises UserError naming what was expected."""
    from rlvla_cli.rundir import checkpoint as ckpt

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist", key="--checkpoint", fix="pass an existing directory")
    found = ckpt.list_checkpoints(path)
    if found:
        path = found[-1][1]
    if (path / ckpt.TRAINER_STATE).is_file():
        weights = path / "policy"
        if not _is_weights_dir(weights):
            raise AssetError(f"checkpoint {path} has no policy weights in {weights}", fix="pick another checkpoint")
        step = int(ckpt.read_trainer_state(path).get("global_step", 0)) or _step_from_name(path)
        config = path / "config.yaml"
        return ResolvedCheckpoint("checkpoint", weights, config if config.is_file() else None, step)
    if (path / "adapter_config.json").is_file():
        return ResolvedCheckpoint("lora", path)
    if _is_weights_dir(path) or (path / "pytorch_model.bin").is_file():
        return ResolvedCheckpoint("hf_model", path)
    raise UserError(
        f"{path} is neither a run directory, a checkpoint, a model directory nor a LoRA adapter",
        key="--checkpoint",
        fix="pass <run_dir>, <run_dir>/checkpoints/global_step_<N>, a folder with config.json + *.safetensors, "
        "or a folder with adapter_config.json",
    )


def _step_from_name(path: Path) -> int | None:
    tail = path.name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def saved_model_config(weights: Path) -> dict[str, Any] | None:
    """The ``rlvla_model`` dict rlvla writes into ``config.json`` next to the weights (None if absent)."""
    config = weights / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())
    except json.JSONDecodeError:
        return None
    model = data.get("rlvla_model") if isinstance(data, dict) else None
    return model if isinstance(model, dict) else None


def _lora_base(weights: Path, model_cfg: ModelConfigBase) -> str | None:
    if model_cfg.model_path:
        return model_cfg.model_path
    try:
        base = json.loads((weights / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError):
        return None
    return base if base and Path(base).is_dir() else None


def model_config_for(resolved: ResolvedCheckpoint, model_cfg: ModelConfigBase) -> Any:
    """``actor.model`` to build: the saved model config when there is one, then the checkpoint's paths."""
    from pydantic import TypeAdapter

    from rlvla_cli.config.model import ModelConfig

    saved = saved_model_config(resolved.weights)
    if saved is not None:
        model_cfg = TypeAdapter(ModelConfig).validate_python(saved)
    if resolved.kind == "lora" or (resolved.weights / "adapter_config.json").is_file():
        base = _lora_base(resolved.weights, model_cfg)
        if base is None:
            raise UserError(
                f"{resolved.weights} is a LoRA adapter but no base model is known",
                key="actor.model.model_path",
                fix="set actor.model.model_path to the base model directory (e.g. from `rlvla download-assets`)",
            )
        return model_cfg.model_copy(update={"model_path": base, "is_lora": True, "lora_path": str(resolved.weights)})
    return model_cfg.model_copy(update={"model_path": str(resolved.weights), "lora_path": None})


def load_eval_config(config: Path | None, resolved: ResolvedCheckpoint | None, overrides: list[str]) -> Any:
    """The RootConfig to evaluate with: ``--config``, else the config saved with the checkpoint, else the
    built-in quickstart; overrides apply last. ``actor.model`` then follows the checkpoint."""
    from rlvla_cli.config.loader import load_config

    source = config if config is not None else (resolved.config_file if resolved is not None else None)
    cfg = load_config(source, overrides)
    if resolved is not None:
        cfg.actor.model = model_config_for(resolved, cfg.actor.model)
    return cfg


def load_checkpoint_policy(cfg: RootConfig, device: str = "cpu") -> Any:
    """Build ``cfg.actor.model`` (whose paths ``load_eval_config`` pointed at the checkpoint) on ``device``."""
    from rlvla_cli.models.registry import build_policy

    return build_policy(cfg.actor.model, device=device)

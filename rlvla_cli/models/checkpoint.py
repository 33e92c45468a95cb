"""Reading and writing weights in Hugging Face layout, safely.

- Reads ``model.safetensors``, or sharded ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``;
  a ``*.bin`` / ``*.pt`` file only through ``torch.load(weights_only=True)`` (never a full unpickle).
- Loads into a module with shape checks and a clear report of missing / unexpected keys (``AssetError`` naming
  the directory and the first few keys).
- Writes safetensors, sharded with an index above ``max_shard_bytes`` (like ``save_pretrained``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from rlvla_cli.errors import AssetError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_SHOW = 5


def weight_files(directory: str | Path) -> list[Path]:
    """The weight files of a checkpoint directory, in load order. Raises ``AssetError`` if there are none."""
    d = Path(directory)
    if not d.is_dir():
        raise AssetError(f"checkpoint directory {d} does not exist", key="actor.model.model_path",
                         fix="point model_path at a local directory (download it with `rlvla download-assets`)")
    index = d / INDEX_NAME
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (d / s).is_file()]
        if missing:
            raise AssetError(f"{index} lists shards that are missing: {missing[:_SHOW]}",
                             fix="re-download the checkpoint (an interrupted download leaves shards out)")
        return [d / s for s in shards]
    if (d / SINGLE_NAME).is_file():
        return [d / SINGLE_NAME]
    legacy = sorted(d.glob("pytorch_model*.bin")) + sorted(d.glob("*.pt"))
    if legacy:
        return legacy
    raise AssetError(f"no weights in {d} (expected {SINGLE_NAME} or {INDEX_NAME} with its shards)",
                     fix="point model_path at a Hugging Face model directory")


def read_state_dict(
    directory: str | Path, rename: Callable[[str], str | None] | None = None
) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory on the CPU; ``rename`` maps each stored name to ours (None drops
    it). ``.bin`` / ``.pt`` files go through ``torch.load(weights_only=True)``."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt", device="cpu") as f:
                items = ((k, f.get_tensor(k)) for k in f.keys())
                _collect(state, items, rename)
        else:
            try:
                loaded = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as err:  # an unsafe pickle is refused here, by design
                raise AssetError(f"{path} could not be read as plain tensors ({err})",
                                 fix="convert it to safetensors; pickled code objects are never loaded") from err
            _collect(state, loaded.items(), rename)
    return state


def _collect(state: dict, items: Iterable[tuple[str, torch.Tensor]], rename: Callable[[str], str | None] | None):
    for key, tensor in items:
        new = rename(key) if rename else key
        if new is not None:
            state[new] = tensor


def load_into(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source: str,
    allow_missing: Callable[[str], bool] = lambda k: False,
) -> None:
    """Copy ``state`` into ``module`` (dtype cast to each parameter's). Refuses, naming ``source`` and the
    first keys: shape mismatches, keys the module lacks, and module keys the state lacks unless
    ``allow_missing(key)`` (e.g. a value head trained from scratch)."""
    own = module.state_dict()
    unexpected = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and not allow_missing(k))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(state) if k in own and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:_SHOW])})")
    if missing:
        problems.append(f"{len(missing)} missing keys ({', '.join(missing[:_SHOW])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:_SHOW])})")
    if problems:
        raise AssetError(
            f"checkpoint {source} does not match the configured model: " + "; ".join(problems),
            key="actor.model.model_path",
            fix="check that model_type / size match the checkpoint (its config.json defines the dimensions)",
        )
    if any(t.is_meta for t in own.values()):  # built under accelerate.init_empty_weights: adopt the tensors
        module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False, assign=True)
        return
    with torch.no_grad():
        for key, tensor in state.items():
            own[key].copy_(tensor.to(own[key].dtype))


def save_state_dict(
    state: dict[str, torch.Tensor], directory: str | Path, max_shard_bytes: int = 5 * 1024**3
) -> list[str]:
    """Write ``state`` as ``model.safetensors`` or, above ``max_shard_bytes``, as shards + index (HF layout).
    Shared storage is cloned per key (safetensors refuses aliases). Returns the file names written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    seen: set[int] = set()
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen and v.numel() > 0:
            tensors[k] = v.clone()
        seen.add(ptr)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in tensors.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += nbytes
    if len(shards) == 1:
        _atomic_save(shards[0], out / SINGLE_NAME)
        return [SINGLE_NAME]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, shard in zip(names, shards, strict=True):
        _atomic_save(shard, out / name)
        weight_map.update({k: name for k in shard})
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    write_json(out / INDEX_NAME, {"metadata": {"total_size": total}, "weight_map": weight_map})
    return names


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False))
    os.replace(tmp, path)


def read_json(path: str | Path, what: str) -> dict:
    """Read a JSON file or raise ``AssetError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path} is missing ({what})", fix="point model_path at a complete checkpoint directory")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AssetError(f"{path} is not valid JSON ({err})", fix="re-download the checkpoint") from err


def save_policy_safetensors(policy: nn.Module, directory: str | Path, model_cfg: Any) -> None:
    """Generic layout for our own architectures: ``config.json`` (the model config) + safetensors weights."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_state_dict(policy.state_dict(), out)
    write_json(out / "config.json", {"rlvla_model": model_cfg.model_dump(mode="json")})


def load_policy_safetensors(policy: nn.Module, directory: str | Path) -> None:
    """Inverse of ``save_policy_safetensors`` (strict: every key, every shape)."""
    load_into(policy, read_state_dict(directory), source=str(directory))

"""Tensor metadata of a checkpoint without reading tensor data.

safetensors: ``safe_open(...).get_slice(name)`` gives shape and dtype from the file header (the data is never
touched). Torch files (OpenVLA-OFT's ``proprio_projector--*.pt`` / ``action_head--*.pt``, ``*.bin``) are opened
with ``torch.load(mmap=True, weights_only=True)``: the storages are memory-mapped, not read, and no pickled
code runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from rlvla_cli.errors import AssetError
from rlvla_cli.models.checkpoint import INDEX_NAME, weight_files

# safetensors header dtype names -> torch's short names (what the report prints)
_ST_DTYPES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F64": "fp64", "I64": "int64", "I32": "int32",
              "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "fp8_e4m3", "F8_E5M2": "fp8_e5m2"}
_TORCH_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32", torch.float64: "fp64",
                 torch.int64: "int64", torch.int32: "int32", torch.uint8: "uint8", torch.bool: "bool"}
DTYPE_TO_TORCH = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "fp64": torch.float64,
                  "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool}


@dataclass(frozen=True)
class TensorMeta:
    """One stored tensor: its name in the file, shape, dtype (short name: bf16, fp32, ...) and file name."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    file: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def meta_tensor(self) -> torch.Tensor:
        """A shape-only tensor on the meta device (for the loaders' shape checks)."""
        return torch.empty(self.shape, dtype=DTYPE_TO_TORCH.get(self.dtype, torch.float32), device="meta")


def safetensors_metadata(path: str | Path) -> list[TensorMeta]:
    """Names, shapes and dtypes from a safetensors header. Raises ``AssetError`` for a damaged file."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            out = []
            for key in f.keys():
                piece = f.get_slice(key)
                dtype = piece.get_dtype()
                out.append(TensorMeta(key, tuple(piece.get_shape()), _ST_DTYPES.get(dtype, dtype.lower()), path.name))
            return out
    except (OSError, ValueError, RuntimeError) as err:
        raise AssetError(f"{path} is not a readable safetensors file ({err})",
                         fix="re-download it (an interrupted download leaves a truncated file)") from err


def torch_file_metadata(path: str | Path) -> list[TensorMeta]:
    """Names, shapes and dtypes of a torch-saved state dict, memory-mapped (no data read, no code run)."""
    path = Path(path)
    try:
        loaded = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # weights_only refuses pickled code: the loaders refuse the same file
        raise AssetError(f"{path} could not be read as plain tensors ({err})",
                         fix="re-export it with torch.save(state_dict) or as safetensors") from err
    if not isinstance(loaded, dict):
        raise AssetError(f"{path} holds a {type(loaded).__name__}, not a state dict of tensors",
                         fix="save model.state_dict(), not the module")
    return [TensorMeta(k, tuple(v.shape), _TORCH_DTYPES.get(v.dtype, str(v.dtype).removeprefix("torch.")), path.name)
            for k, v in loaded.items() if isinstance(v, torch.Tensor)]


def file_metadata(path: str | Path) -> list[TensorMeta]:
    """Metadata of one weight file by its suffix."""
    path = Path(path)
    return safetensors_metadata(path) if path.suffix == ".safetensors" else torch_file_metadata(path)


def weights_metadata(directory: str | Path) -> dict[str, TensorMeta]:
    """Every tensor of a checkpoint directory's weights, the files the loaders read (``weight_files``: the
    index's shards, or ``model.safetensors``, or ``*.bin`` / ``*.pt``), by stored name."""
    out: dict[str, TensorMeta] = {}
    for path in weight_files(directory):
        for meta in file_metadata(path):
            out[meta.name] = meta
    return out


def index_total_size(directory: str | Path) -> int | None:
    """``metadata.total_size`` (bytes) of ``model.safetensors.index.json``, when there is one."""
    index = Path(directory) / INDEX_NAME
    if not index.is_file():
        return None
    try:
        return int(json.loads(index.read_text()).get("metadata", {}).get("total_size"))
    except (ValueError, TypeError, json.JSONDecodeError):
        return None


def dtype_counts(tensors: list[TensorMeta]) -> dict[str, int]:
    """Parameters per dtype, largest first."""
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.dtype] = counts.get(t.dtype, 0) + t.numel
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

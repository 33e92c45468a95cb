"""Tensors between processes over torch.distributed point-to-point ops (gloo on CPUs, NCCL on GPUs).

A message is a dict of named tensors: a small header (names, dtypes, shapes and a few scalars; pickled by
``send_object_list``) and then one flat buffer per dtype (``dist.send``), so image-sized data is never pickled.
Bool tensors travel as uint8 (gloo has no bool). The receiver rebuilds the same dict on its own device.
A failed or timed-out transfer raises ``WorkerError`` naming the peer (see :func:`comm_errors`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.errors import WorkerError

_WIRE_DTYPE = {torch.bool: torch.uint8}


def comm_device() -> torch.device:
    """Where this process's transfer buffers live: its current CUDA device under NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


_COMM_FAILURE = ("gloo", "nccl", "connection reset", "connection closed", "timed out", "timeout", "broken pipe")


def is_comm_failure(err: BaseException) -> bool:
    """Whether ``err`` (from code that computes and communicates, e.g. a DeepSpeed step or save) is a failed
    collective rather than a compute error such as an out-of-memory."""
    import torch.distributed as dist

    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, (RuntimeError, ConnectionError)) and any(word in text for word in _COMM_FAILURE)


@contextlib.contextmanager
def comm_errors(what: str, only_comm: bool = False) -> Iterator[None]:
    """Turn a torch.distributed failure (a peer died: connection reset; or the collective timeout passed) into a
    ``WorkerError`` that says ``what`` was being done, so the run stops instead of hanging or crashing opaquely.
    only_comm: around work that also computes, convert only what :func:`is_comm_failure` recognises."""
    try:
        yield
    except (RuntimeError, ConnectionError) as err:  # DistBackendError / DistNetworkError subclass RuntimeError
        if only_comm and not is_comm_failure(err):
            raise
        detail = re.sub(r"^\[[^\]]*\]\s*", "", str(err).splitlines()[0] if str(err) else "")  # gloo's [file:line]
        detail = detail.split(". ")[0][:200]
        raise WorkerError(f"{what} failed: a node driver or trainer rank died or did not answer within "
                          f"cluster.collective_timeout_s ({type(err).__name__}: {detail})") from err


def _dtype_groups(tensors: dict[str, torch.Tensor]) -> dict[torch.dtype, list[str]]:
    groups: dict[torch.dtype, list[str]] = {}
    for name, tensor in tensors.items():
        groups.setdefault(_WIRE_DTYPE.get(tensor.dtype, tensor.dtype), []).append(name)
    return groups


def send_tensors(tensors: dict[str, torch.Tensor], dst: int, extra: dict[str, Any] | None = None,
                 group=None) -> None:
    """Send ``tensors`` (any devices) and a small picklable ``extra`` dict to rank ``dst`` (blocking)."""
    device = comm_device()
    header = {"extra": extra or {},
              "meta": [(name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in tensors.items()]}
    dist.send_object_list([header], dst=dst, group=group, device=device)
    for wire, names in _dtype_groups(tensors).items():
        parts = [tensors[n].detach().to(device=device, dtype=wire).reshape(-1) for n in names]
        dist.send(_flatten_dense_tensors(parts).contiguous(), dst=dst, group=group)


def recv_tensors(src: int, group=None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Receive what :func:`send_tensors` sent from rank ``src``: (tensors on this rank's comm device, extra)."""
    device = comm_device()
    holder: list[Any] = [None]
    dist.recv_object_list(holder, src=src, group=group, device=device)
    header = holder[0]
    meta = {name: (getattr(torch, dtype), shape) for name, dtype, shape in header["meta"]}
    templates = {name: torch.empty(shape, dtype=dtype, device="meta") for name, (dtype, shape) in meta.items()}
    out: dict[str, torch.Tensor] = {}
    for wire, names in _dtype_groups(templates).items():
        numel = sum(templates[n].numel() for n in names)
        flat = torch.empty(numel, dtype=wire, device=device)
        dist.recv(flat, src=src, group=group)
        shells = [torch.empty(templates[n].numel(), dtype=wire, device="meta") for n in names]
        for name, piece in zip(names, _unflatten_dense_tensors(flat, shells), strict=True):
            out[name] = piece.reshape(meta[name][1]).to(meta[name][0])
    return {name: out[name] for name in meta}, header["extra"]


def batch_to_tensors(batch: RolloutBatch, prefix: str = "") -> dict[str, torch.Tensor]:
    """A RolloutBatch as flat named tensors (``forward_inputs.<key>``; None fields left out)."""
    out = {}
    for f in fields(RolloutBatch):
        value = getattr(batch, f.name)
        if isinstance(value, dict):
            out.update({f"{prefix}{f.name}.{key}": tensor for key, tensor in value.items()})
        elif value is not None:
            out[f"{prefix}{f.name}"] = value
    return out


def batch_from_tensors(tensors: dict[str, torch.Tensor], prefix: str = "") -> RolloutBatch:
    """The inverse of :func:`batch_to_tensors` (keys without ``prefix`` are ignored)."""
    values: dict[str, Any] = {"forward_inputs": {}}
    for name, tensor in tensors.items():
        if not name.startswith(prefix):
            continue
        name = name[len(prefix):]
        if name.startswith("forward_inputs."):
            values["forward_inputs"][name.split(".", 1)[1]] = tensor
        else:
            values[name] = tensor
    return RolloutBatch(**values).validate()

"""Trainer -> rollout weight sync after every update, with a version number.

* Same device and dtype: the rollout copy's parameters are pointed at the trainer's tensors (``.data``
  aliasing): no copy at all, the rollout sees each optimizer step in place.
* Different device or dtype in one process: bucketed copies (one flatten + one transfer per bucket).
* Another process (a rollout worker on another GPU): :func:`broadcast_weights`, a bucketed
  ``torch.distributed.broadcast`` from the trainer rank into every receiver's parameters (NCCL on GPUs).
ZeRO-3 sources are gathered first (``deepspeed.zero.GatheredParameters``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from rlvla_cli.runtime.perf import Stopwatch

DEFAULT_BUCKET_BYTES = 256 * 1024 * 1024


def _is_zero3(module: torch.nn.Module) -> bool:
    return any(hasattr(p, "ds_id") for p in module.parameters())


def gathered(module: torch.nn.Module):
    """Context in which ZeRO-3 partitioned parameters of ``module`` are whole (a no-op otherwise)."""
    if not _is_zero3(module):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)


def named_tensors(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Parameters then buffers, in a stable order (the same on every process)."""
    return list(module.named_parameters()) + list(module.named_buffers())


def buckets(tensors: list[torch.Tensor], bucket_bytes: int) -> Iterator[list[int]]:
    """Indices of ``tensors`` grouped into runs of the same dtype of at most ``bucket_bytes`` (a bigger tensor
    gets its own bucket)."""
    current: list[int] = []
    size = 0
    for index, tensor in enumerate(tensors):
        nbytes = tensor.numel() * tensor.element_size()
        if current and (size + nbytes > bucket_bytes or tensors[current[0]].dtype != tensor.dtype):
            yield current
            current, size = [], 0
        current.append(index)
        size += nbytes
    if current:
        yield current


class WeightSync:
    """Keep ``target`` (rollout copy) equal to ``source`` (the trainer's module); ``version`` counts syncs.

    Both modules must have the same parameter / buffer names and shapes (two builds of the same policy).
    ``mode`` is ``share`` when every pair lives on the same device with the same dtype, else ``copy``.
    """

    def __init__(self, source: torch.nn.Module, target: torch.nn.Module, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.source, self.target, self.bucket_bytes = source, target, bucket_bytes
        src, tgt = dict(named_tensors(source)), dict(named_tensors(target))
        if src.keys() != tgt.keys():
            missing = sorted(set(src) ^ set(tgt))[:5]
            raise ValueError(f"rollout and trainer policies differ in parameter names, e.g. {missing}")
        self.names = list(src)
        same = all(src[n].device == tgt[n].device and src[n].dtype == tgt[n].dtype for n in self.names)
        self.mode = "share" if same and not _is_zero3(source) else "copy"
        self.version = 0
        self.last_seconds = 0.0

    def sync(self) -> int:
        """Make the target equal to the source; returns the new version."""
        with Stopwatch() as watch, gathered(self.source), torch.no_grad():
            src, tgt = dict(named_tensors(self.source)), dict(named_tensors(self.target))
            if self.mode == "share":
                for name in self.names:
                    tgt[name].data = src[name].data
            else:
                self._copy([src[n] for n in self.names], [tgt[n] for n in self.names])
        self.version += 1
        self.last_seconds = watch.seconds
        return self.version

    def _copy(self, sources: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        for bucket in buckets(sources, self.bucket_bytes):
            flat = _flatten_dense_tensors([sources[i].detach() for i in bucket])
            flat = flat.to(device=targets[bucket[0]].device, dtype=targets[bucket[0]].dtype, non_blocking=True)
            for i, piece in zip(bucket, _unflatten_dense_tensors(flat, [sources[i] for i in bucket]), strict=True):
                targets[i].data.copy_(piece)


def broadcast_weights(module: torch.nn.Module, src: int, group=None, bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                      version: int | None = None) -> int | None:
    """Bucketed ``torch.distributed.broadcast`` of ``module``'s parameters and buffers from rank ``src`` into
    the same module on every rank of ``group`` (collective). Tensors travel on the module's device (NCCL needs
    CUDA tensors). Returns the broadcast ``version`` (sent by ``src``) on every rank."""
    import torch.distributed as dist

    holder = [version]
    dist.broadcast_object_list(holder, src=src, group=group)
    with gathered(module), torch.no_grad():
        tensors = [t for _, t in named_tensors(module)]
        for bucket in buckets(tensors, bucket_bytes):
            flat = _flatten_dense_tensors([tensors[i].detach() for i in bucket])
            dist.broadcast(flat, src=src, group=group)
            if dist.get_rank() != src:
                for i, piece in zip(bucket, _unflatten_dense_tensors(flat, [tensors[i] for i in bucket]), strict=True):
                    tensors[i].data.copy_(piece)
    return holder[0]

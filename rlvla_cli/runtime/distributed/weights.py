"""Weight sync to every node: trainer rank 0 -> each node driver's rollout copies, versioned.

Rank 0 broadcasts its trainer module's parameters and buffers in dtype-homogeneous buckets (the bucketed
broadcast of ``weight_sync.py``) over the group of node drivers; each other driver receives every bucket into a
buffer on its comm device and copies the pieces into its first rollout copy (casting to the rollout precision),
then its local sync fills any further copies. Rank 0 syncs its own copies from the trainer module directly.
The first sync also sends the tensor layout (names, dtypes, shapes: a few KB) so receivers can size the
buckets without a partitioned (ZeRO-3) module of their own.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from rlvla_cli.runtime.distributed.transfer import comm_device
from rlvla_cli.runtime.perf import Stopwatch
from rlvla_cli.runtime.weight_sync import DEFAULT_BUCKET_BYTES, buckets, gathered, named_tensors


def _layout(module: torch.nn.Module) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in named_tensors(module)]


class NodeWeightSync:
    """The multi-node weight sync of one node driver.

    source: the trainer module (used on rank 0 only); local: this node's in-process sync (``WeightSync`` /
    ``SyncGroup``) whose source is the trainer module on rank 0 and the first rollout copy elsewhere; first_copy:
    that rollout copy (the receive target on other drivers); group: the drivers' process group (None: one node).
    ``version``, ``last_seconds`` and ``sync()`` as ``WeightSync``; ``last_seconds`` covers broadcast + local sync.
    """

    def __init__(self, source: torch.nn.Module, local, first_copy: torch.nn.Module | None, group, is_source: bool,
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.source, self.local, self.first_copy, self.group = source, local, first_copy, group
        self.is_source, self.bucket_bytes = is_source, bucket_bytes
        self.version = 0
        self.last_seconds = 0.0
        self._layout: list[tuple[str, str, tuple[int, ...]]] | None = None

    def sync(self, version: int | None = None) -> int:
        """Rank 0: broadcast and sync (the new version is ``version + 1``); other drivers: receive ``version``."""
        with Stopwatch() as watch:
            if self.group is not None:
                self._broadcast()
            if self.local is not None:
                self.local.sync()
        self.version = self.version + 1 if self.is_source else int(version)
        self.last_seconds = watch.seconds
        return self.version

    def _broadcast(self) -> None:
        src = dist.get_global_rank(self.group, 0)
        if self._layout is None:
            holder = [_layout(self.source) if self.is_source else None]
            dist.broadcast_object_list(holder, src=src, group=self.group, device=comm_device())
            self._layout = holder[0]
        device = comm_device()
        with gathered(self.source) if self.is_source else contextlib.nullcontext(), torch.no_grad():
            if self.is_source:
                tensors = [t for _, t in named_tensors(self.source)]
            else:
                tensors = [torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
                           for _, dtype, shape in self._layout]
                targets = dict(named_tensors(self.first_copy)) if self.first_copy is not None else {}
            for bucket in buckets(tensors, self.bucket_bytes):
                if self.is_source:
                    flat = _flatten_dense_tensors([tensors[i].detach().to(device) for i in bucket])
                else:
                    numel = sum(tensors[i].numel() for i in bucket)
                    flat = torch.empty(numel, dtype=tensors[bucket[0]].dtype, device=device)
                dist.broadcast(flat, src=src, group=self.group)
                if self.is_source or not targets:
                    continue
                for i, piece in zip(bucket, _unflatten_dense_tensors(flat, [tensors[i] for i in bucket]), strict=True):
                    targets[self._layout[i][0]].data.copy_(piece)

"""Rollout on several devices: one copy of the policy per rollout device, each batch split over them.

A placement such as ``rollout: 4-7`` gives the rollout four GPUs. The driver keeps one rollout copy per device
and splits every ``predict`` / ``get_values`` batch into contiguous row blocks, one per copy, run in threads
(the GPU work of the copies overlaps; torch releases the GIL while kernels run). Outputs come back on the CPU,
where the rollout loop keeps them anyway. Each copy has its own weight sync and offloader.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from rlvla_cli.models.base import PolicyOutput
from rlvla_cli.runtime.offload import ModuleOffloader
from rlvla_cli.runtime.rollout_worker import to_cpu
from rlvla_cli.runtime.weight_sync import WeightSync


def row_blocks(batch: int, parts: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of at most ``parts`` contiguous, non-empty row blocks covering ``batch`` rows, sizes as
    even as possible (the first ``batch % parts`` blocks one row larger)."""
    size, extra = divmod(batch, parts)
    blocks, start = [], 0
    for index in range(min(parts, batch)):
        stop = start + size + (1 if index < extra else 0)
        blocks.append((start, stop))
        start = stop
    return blocks


def slice_obs(obs: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """Rows ``start:stop`` of an observation dict (tensors ``[B, ...]`` and the ``task_descriptions`` list)."""
    return {key: value[start:stop] for key, value in obs.items()}


def concat_outputs(outputs: list[PolicyOutput]) -> PolicyOutput:
    """Row-wise concatenation of the copies' outputs, on the CPU."""
    values = [o.values for o in outputs]  # a policy without a value head gives None on every copy
    return PolicyOutput(
        actions=torch.cat([to_cpu(o.actions) for o in outputs]),
        logprobs=torch.cat([to_cpu(o.logprobs) for o in outputs]),
        values=None if values[0] is None else torch.cat([to_cpu(v) for v in values]),
        forward_inputs={key: torch.cat([to_cpu(o.forward_inputs[key]) for o in outputs])
                        for key in outputs[0].forward_inputs},
    )


class ReplicatedPolicy(torch.nn.Module):
    """The rollout-side policy over ``replicas`` (one per device, same architecture): ``predict`` and
    ``get_values`` take and return what a single policy does, with the batch split over the copies."""

    def __init__(self, replicas: list[torch.nn.Module]):
        super().__init__()
        if not replicas:
            raise ValueError("ReplicatedPolicy needs at least one replica")
        self.replicas = torch.nn.ModuleList(replicas)
        self._threads = ThreadPoolExecutor(max_workers=len(replicas), thread_name_prefix="rlvla-rollout")

    def _split(self, obs: dict[str, Any], call) -> list[Any]:
        batch = len(obs["task_descriptions"])
        blocks = row_blocks(batch, len(self.replicas))
        jobs = [self._threads.submit(call, replica, slice_obs(obs, start, stop))
                for replica, (start, stop) in zip(self.replicas, blocks, strict=False)]
        return [job.result() for job in jobs]

    @torch.no_grad()
    def predict(self, obs: dict[str, Any], mode: str = "train", **kwargs: Any) -> PolicyOutput:
        return concat_outputs(self._split(obs, lambda policy, part: policy.predict(part, mode=mode, **kwargs)))

    @torch.no_grad()
    def get_values(self, obs: dict[str, Any]) -> torch.Tensor:
        return torch.cat([to_cpu(v) for v in self._split(obs, lambda policy, part: policy.get_values(part))])


class SyncGroup:
    """One :class:`WeightSync` per rollout copy, driven as one (same ``sync`` / ``version`` / ``last_seconds``)."""

    def __init__(self, source: torch.nn.Module, targets: list[torch.nn.Module]):
        self.syncs = [WeightSync(source, target) for target in targets]
        self.last_seconds = 0.0

    @property
    def version(self) -> int:
        return self.syncs[0].version

    @version.setter
    def version(self, value: int) -> None:
        for sync in self.syncs:
            sync.version = value

    def sync(self) -> int:
        for sync in self.syncs:
            sync.sync()
        self.last_seconds = sum(sync.last_seconds for sync in self.syncs)
        return self.version


class OffloadGroup:
    """One :class:`ModuleOffloader` per rollout copy (each back to its own device)."""

    def __init__(self, modules: list[torch.nn.Module], devices: list[str], enabled: bool):
        self.offloaders = [ModuleOffloader(m, d, enabled) for m, d in zip(modules, devices, strict=True)]

    def offload(self) -> None:
        for offloader in self.offloaders:
            offloader.offload()

    def reload(self) -> None:
        for offloader in self.offloaders:
            offloader.reload()

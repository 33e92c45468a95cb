"""One node's rollout side: its env workers, its rollout copies and the rollout worker that drives them.

The node's pool runs the global env workers of ``NodeRole.env_workers`` (``EnvWorkerPool(workers=...)``), so its
envs are exactly those workers' envs in a single-node run; seeds per step and epoch are the runner's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.models.base import PRECISION_DTYPES
from rlvla_cli.runtime.offload import ModuleOffloader
from rlvla_cli.runtime.replicas import OffloadGroup, ReplicatedPolicy, SyncGroup
from rlvla_cli.runtime.rollout_worker import RolloutWorker
from rlvla_cli.runtime.threads import available_cpus, rollout_threads, torch_threads
from rlvla_cli.runtime.weight_sync import WeightSync

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig
    from rlvla_cli.placement.nodes import NodeRole


def rollout_copy(cfg: RootConfig, factory, device: str) -> torch.nn.Module:
    """A rollout copy of the policy on ``device`` in ``rollout.precision`` (GPU), filled by the weight sync."""
    policy = factory(cfg, device)
    if torch.device(device).type == "cuda" and cfg.rollout.precision != "fp32":
        policy.to(dtype=PRECISION_DTYPES[cfg.rollout.precision])
    return policy


def epoch_seed(cfg: RootConfig, global_step: int, epoch: int) -> int:
    """The env reset seed of rollout epoch ``epoch`` of step ``global_step`` (the runner's, runner.py)."""
    env = cfg.env.train
    return env.seed + global_step * env.rollout_epoch + epoch


class NodeRollout:
    """Env workers + rollout copies of one node.

    source: the module the local sync copies from (the trainer module on node 0; None elsewhere: the first copy
    is filled by the broadcast, the others from it). offload: ``rollout.enable_offload`` as planned.
    """

    def __init__(self, cfg: RootConfig, role: NodeRole, total_env_workers: int, factory, source, offload: bool,
                 should_stop: Any):
        from rlvla_cli.envs.workers.pool import EnvWorkerPool

        self.cfg = cfg
        devices = list(role.rollout_devices)
        torch.manual_seed(cfg.runner.seed)  # overwritten by the first sync anyway
        self.copies = [rollout_copy(cfg, factory, device) for device in devices]
        if source is not None:
            self.local_sync = WeightSync(source, self.copies[0]) if len(devices) == 1 else SyncGroup(source,
                                                                                                    self.copies)
        else:
            self.local_sync = SyncGroup(self.copies[0], self.copies[1:]) if len(devices) > 1 else None
        self.policy = self.copies[0] if len(devices) == 1 else ReplicatedPolicy(self.copies)
        self.offloader = (ModuleOffloader(self.copies[0], devices[0], offload) if len(devices) == 1
                          else OffloadGroup(self.copies, devices, offload))
        workers = len(role.env_workers)
        self.pool = EnvWorkerPool(cfg.env.train, num_workers=workers, stages=cfg.rollout.pipeline_stage_num,
                                  seed=cfg.env.train.seed, max_chunk=cfg.actor.model.num_action_chunks,
                                  workers=(role.env_workers[0], total_env_workers))
        cpu = torch.device(devices[0]).type == "cpu"
        self.threads = rollout_threads(available_cpus(), workers) if cpu else None
        self.worker = RolloutWorker(self.policy, devices[0], self.pool, cfg.chunk_steps_per_rollout,
                                    cfg.rollout.sampling, auto_reset=cfg.env.train.auto_reset,
                                    needs_values=cfg.algorithm.needs_rollout_values, should_stop=should_stop)

    def collect(self, global_step: int) -> tuple[RolloutBatch, dict[str, torch.Tensor], int] | None:
        """This node's rollout epochs of step ``global_step``, concatenated along B: (batch, finished-episode
        metrics, env steps); None when a stop was requested meanwhile."""
        results = []
        for epoch in range(self.cfg.env.train.rollout_epoch):
            with torch_threads(self.threads):
                result = self.worker.collect(epoch_seed(self.cfg, global_step, epoch))
            if result is None:
                return None
            results.append(result)
        episodes = {k: torch.cat([r.episodes[k] for r in results]) for k in results[0].episodes}
        return RolloutBatch.cat([r.batch for r in results]), episodes, sum(r.env_steps for r in results)

    def close(self) -> None:
        self.pool.close()

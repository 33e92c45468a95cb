"""Node 0's driver: the training loop of ``runner.py`` with every node's envs and rollout copies.

Per step: ``SyncWeights`` (trainer rank 0 -> every node's rollout copies, ``time/sync_weights``), ``Collect``
(each node runs its env workers; the batches come back as tensors and are merged into single-node env order),
advantages once on the merged batch (``algorithms/``), then the trainer ranks' update (shards as tensors).
A node that reports a stop (SIGTERM there) makes the loop checkpoint and stop like a local signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.errors import WorkerError
from rlvla_cli.runtime.distributed.commands import Collect, SyncWeights
from rlvla_cli.runtime.distributed.merge import merge_node_batches
from rlvla_cli.runtime.distributed.node_rollout import NodeRollout
from rlvla_cli.runtime.distributed.ranks import drivers_group, rank_plan
from rlvla_cli.runtime.distributed.transfer import batch_from_tensors, recv_tensors
from rlvla_cli.runtime.distributed.weights import NodeWeightSync
from rlvla_cli.runtime.offload import EngineOffloader, ModuleOffloader
from rlvla_cli.runtime.runner import Runner
from rlvla_cli.runtime.trainer_group import TrainerGroup

if TYPE_CHECKING:
    from rlvla_cli.placement.nodes import NodeLayout

EPISODES = "episodes."


class LeaderSync:
    """``sync()`` of node 0: tell the drivers to receive version ``v + 1``, then broadcast (``NodeWeightSync``)."""

    def __init__(self, group: TrainerGroup, inner: NodeWeightSync):
        self.group, self.inner = group, inner

    @property
    def version(self) -> int:
        return self.inner.version

    @version.setter
    def version(self, value: int) -> None:
        self.inner.version = value

    @property
    def last_seconds(self) -> float:
        return self.inner.last_seconds

    def sync(self) -> int:
        self.group.command(SyncWeights(self.inner.version + 1))
        with self.group.comm("broadcasting the weights to the node drivers"):
            return self.inner.sync()


class MultiNodeRunner(Runner):
    """``Runner`` on node 0 of a multi-node run (``layout``: every node's role; ``master``: trainer world)."""

    def __init__(self, cfg, placement, layout: NodeLayout, master: tuple[str, int], offload=(False, False),
                 factory=None, console: bool = True):
        kwargs = {} if factory is None else {"factory": factory}
        super().__init__(cfg, placement, offload, console=console, **kwargs)
        self.layout, self.master = layout, master
        self.node = None

    def setup(self) -> None:
        from rlvla_cli.config.loader import dump_config
        from rlvla_cli.tracking import build_tracker

        cfg, role = self.cfg, self.layout.nodes[0]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(dump_config(cfg))
        devices = [p.device for p in self.placement.components["actor"].processes]
        self.group = TrainerGroup(cfg, devices, cfg.total_optimizer_steps, self.factory,
                                  plan=rank_plan(self.layout, role, devices, self.master))
        with self.group.comm("creating the node drivers' group"):
            drivers = drivers_group(self.layout)
        source = self.group.module
        if role.runs_rollout:
            self.node = NodeRollout(cfg, role, self.layout.total_env_workers, self.factory, source,
                                    self.offload[1], self.stop)
            self.pool, self.rollout_policy = self.node.pool, self.node.policy
            self.rollout_offloader, self.rollout_threads = self.node.offloader, self.node.threads
            local = self.node.local_sync
        else:  # node 0 trains only: in-loop evaluation uses the trainer module itself
            self.rollout_policy, local = source, None
            self.rollout_offloader = ModuleOffloader(source, devices[0], False)
        inner = NodeWeightSync(source, local, None, drivers, is_source=True)
        self.sync = LeaderSync(self.group, inner)
        self.actor_offloader = EngineOffloader(self.group.trainer.engine, devices[0], self.offload[0])
        self._maybe_resume()
        self.tracker = build_tracker(cfg.runner.logger, self.run_dir, cfg.model_dump(mode="json"),
                                     cfg.total_steps, self.global_step, console=self.console)

    def _collect(self) -> tuple[Any, dict[str, torch.Tensor], int] | None:
        """Every node's rollout epochs, merged in single-node env order; None when any node stopped."""
        self.group.command(Collect(self.global_step))
        own = self._own_collect()
        parts, aborted, errors = [], False, []
        if self.node is not None:
            aborted = own is None
            parts.append(own)
        for role in self.layout.nodes[1:]:
            if not role.runs_rollout:
                continue
            with self.group.comm(f"receiving the rollout of node {role.node}"):
                tensors, extra = recv_tensors(src=role.driver_rank)
            if extra["stop"]:
                self.stop.requested = True
                self.stop.signal_name = self.stop.signal_name or f"{extra['stop']} on node {role.node}"
            if extra.get("error"):
                errors.append(f"node {role.node}: {extra['error']}")
            if extra["aborted"]:
                aborted = True
                continue
            episodes = {k[len(EPISODES):]: v for k, v in tensors.items() if k.startswith(EPISODES)}
            parts.append((batch_from_tensors(tensors, prefix="batch."), episodes, extra["env_steps"]))
        if errors:  # every node is still serving: the runner's fault path can checkpoint with all of them
            raise WorkerError("; ".join(errors))
        if aborted:
            return None
        blocks = self.cfg.env.train.rollout_epoch * self.cfg.rollout.pipeline_stage_num
        batch = merge_node_batches([p[0] for p in parts], blocks)
        episodes = {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]}
        return batch, episodes, sum(p[2] for p in parts)

    def _own_collect(self) -> tuple[Any, dict[str, torch.Tensor], int] | None:
        """Node 0's share; None when stopped (also when its env workers died of the same signal: the other nodes'
        replies must still be received before the checkpoint, or the protocol would stall)."""
        if self.node is None:
            return None
        try:
            return self.node.collect(self.global_step)
        except WorkerError:
            if not self.stop.requested:
                raise
            return None

    def save_checkpoint(self):
        """The runner's checkpoint, which needs every node; after a lost node the last one written stays."""
        if self.group is not None and self.group.broken:
            if self.tracker is not None:
                self.tracker.print(f"a node is gone: no checkpoint of step {self.global_step}; the last one is "
                                   f"{self.last_checkpoint}")
            return self.last_checkpoint
        return super().save_checkpoint()

    def close(self) -> None:
        self.node = None
        super().close()

"""A node driver: the process torchrun starts on each node of a multi-node run.

It reads its node rank from the launcher, leaves the launcher's world, and joins the trainer world as the node's
first trainer rank (spawning the node's other ranks). Node 0 runs the loop (``leader.py``); every other driver
serves rank 0's commands: the trainer commands of ``trainer_group.py`` plus ``SyncWeights`` (receive the broadcast
into its rollout copies) and ``Collect`` (run its env workers, send the batch to rank 0 as tensors).
SIGINT / SIGTERM on any node: that node's rollout stops at the next chunk step, node 0 hears of it in the reply,
checkpoints and stops every node. A dead peer ends the run on every node through the collective timeout.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from rlvla_cli.errors import WorkerError
from rlvla_cli.placement.nodes import NodeLayout, node_layout
from rlvla_cli.runtime.distributed.commands import Collect, SyncWeights
from rlvla_cli.runtime.distributed.leader import EPISODES, MultiNodeRunner
from rlvla_cli.runtime.distributed.node_rollout import NodeRollout
from rlvla_cli.runtime.distributed.ranks import drivers_group, rank_plan, take_launcher_environment, trainer_master
from rlvla_cli.runtime.distributed.transfer import batch_to_tensors, comm_errors, send_tensors
from rlvla_cli.runtime.distributed.weights import NodeWeightSync
from rlvla_cli.runtime.offload import EngineOffloader
from rlvla_cli.runtime.runner import RunResult
from rlvla_cli.runtime.signals import StopRequest
from rlvla_cli.runtime.trainer_group import TrainerGroup, default_policy_factory, serve_commands

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig
    from rlvla_cli.placement.nodes import NodeRole


def run_node(cfg: RootConfig, placement: Any, offload: tuple[bool, bool], console: bool = True,
             factory=default_policy_factory) -> RunResult | int:
    """The driver of this node (rank from torchrun): node 0 returns the run's ``RunResult``; the others return
    an exit code once rank 0 says stop (130 when this node was signalled)."""
    from rlvla_cli.errors import UserError

    node, nodes, launcher_master = take_launcher_environment()
    if nodes != cfg.cluster.num_nodes:
        raise UserError(f"the launcher started {nodes} node driver(s) but cluster.num_nodes is "
                        f"{cfg.cluster.num_nodes}", key="cluster.num_nodes",
                        fix="start one process per node (torchrun --nnodes N --nproc-per-node 1)")
    layout = node_layout(placement)
    master = trainer_master(cfg.cluster, launcher_master)
    if node == 0:
        return MultiNodeRunner(cfg, placement, layout, master, offload, factory, console).run()
    return NodeDriver(cfg, placement, layout, layout.nodes[node], master, offload, factory).serve()


class NodeDriver:
    """A driver of node >= 1: a trainer rank serving rank 0, with the node's env workers and rollout copies."""

    def __init__(self, cfg: RootConfig, placement: Any, layout: NodeLayout, role: NodeRole, master: tuple[str, int],
                 offload: tuple[bool, bool], factory):
        self.cfg, self.placement, self.layout, self.role = cfg, placement, layout, role
        self.master, self.offload, self.factory = master, offload, factory
        self.stop = StopRequest()
        self.group = self.node = self.sync = self.actor_offloader = None

    def serve(self) -> int:
        with self.stop:
            try:
                self._setup()
                serve_commands(self.group.trainer, self.group.rank, extra=self._handle)
            except WorkerError as err:
                if self.group is not None:
                    self.group.broken = True
                print(f"rlvla node {self.role.node}: {err}", file=sys.stderr)
                return 1
            finally:
                self._close()
        return 130 if self.stop.requested else 0

    def _setup(self) -> None:
        cfg, role = self.cfg, self.role
        devices = [p.device for p in self.placement.components["actor"].processes]
        self.group = TrainerGroup(cfg, devices, cfg.total_optimizer_steps, self.factory,
                                  plan=rank_plan(self.layout, role, devices, self.master))
        with comm_errors("creating the node drivers' group"):
            drivers = drivers_group(self.layout)
        first = None
        local = None
        if role.runs_rollout:
            self.node = NodeRollout(cfg, role, self.layout.total_env_workers, self.factory, None, self.offload[1],
                                    self.stop)
            first, local = self.node.copies[0], self.node.local_sync
        self.sync = NodeWeightSync(self.group.module, local, first, drivers, is_source=False)
        self.actor_offloader = EngineOffloader(self.group.trainer.engine, devices[role.driver_rank],
                                               self.offload[0])

    def _handle(self, command: Any) -> None:
        if isinstance(command, SyncWeights):
            if self.node is not None:
                self.node.offloader.reload()
            with comm_errors(f"node {self.role.node} receiving the weights"):
                self.sync.sync(command.version)
        elif isinstance(command, Collect):
            if self.node is not None:
                self._collect(command.global_step)
        else:
            raise ValueError(f"unknown node command {command!r}")

    def _collect(self, global_step: int) -> None:
        """Run this node's rollout and send it to rank 0 (an ``aborted`` reply when a signal stopped it)."""
        self.actor_offloader.offload()
        collected, error = None, None
        if not self.stop.requested:
            try:
                collected = self.node.collect(global_step)
            except WorkerError as err:
                # env workers ended by the same signal (a terminal's Ctrl-C, a scheduler's SIGTERM to the job), or
                # one died: report it instead of dying, so rank 0 can still checkpoint with every node and stop
                error = None if self.stop.requested else f"{type(err).__name__}: {err}"
        self.actor_offloader.reload()
        self.node.offloader.offload()
        extra = {"aborted": collected is None, "stop": self.stop.signal_name if self.stop.requested else None,
                 "env_steps": 0, "error": error}
        tensors = {}
        if collected is not None:
            batch, episodes, env_steps = collected
            extra["env_steps"] = env_steps
            tensors = {**batch_to_tensors(batch, prefix="batch."),
                       **{f"{EPISODES}{k}": v for k, v in episodes.items()}}
        with comm_errors(f"node {self.role.node} sending its rollout"):
            send_tensors(tensors, dst=0, extra=extra)

    def _close(self) -> None:
        if self.node is not None:
            try:
                self.node.close()
            except Exception:  # noqa: BLE001 - keep closing
                pass
        if self.group is not None:
            self.group.close()

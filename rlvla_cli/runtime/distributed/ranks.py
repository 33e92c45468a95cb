"""Trainer world of a multi-node run: this node driver's rank plan and the drivers' process group."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rlvla_cli.runtime.trainer_group import RankPlan

if TYPE_CHECKING:
    from rlvla_cli.config.cluster import ClusterConfig
    from rlvla_cli.placement.nodes import NodeLayout, NodeRole

# what torchrun (torch.distributed.elastic) sets for its worker; the trainer world is a different one, so a node
# driver drops these before it spawns trainer ranks or joins (TORCHELASTIC_USE_AGENT_STORE would even make rank 0
# look for torchrun's store instead of serving its own)
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                      "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT")


def take_launcher_environment() -> tuple[int, int, str | None]:
    """(node rank, number of nodes, master address) from torchrun's variables, which are then removed."""
    node, nodes = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    master = os.environ.get("MASTER_ADDR")
    for key in list(os.environ):
        if key in LAUNCHER_VARIABLES or key.startswith("TORCHELASTIC_"):
            os.environ.pop(key)
    return node, nodes, master


def trainer_master(cluster: ClusterConfig, launcher_master: str | None) -> tuple[str, int]:
    """Where the trainer world meets: the configured master (or the launcher's) on ``master_port + 1``."""
    addr = cluster.master_addr or (cluster.hosts[0] if cluster.hosts else None) or launcher_master or "127.0.0.1"
    return addr, cluster.master_port + 1


def rank_plan(layout: NodeLayout, role: NodeRole, devices: list[str], master: tuple[str, int]) -> RankPlan:
    """The node driver holds the node's first trainer rank and spawns the node's others."""
    local = {rank: index for index, rank in enumerate(role.actor_ranks)}
    return RankPlan(role.driver_rank, layout.world, master[0], master[1],
                    spawn=tuple((rank, devices[rank]) for rank in role.actor_ranks[1:]), local_ranks=local,
                    local_world=len(role.actor_ranks))


def drivers_group(layout: NodeLayout):
    """The process group of the node drivers (weight broadcast); only its members take part in creating it."""
    import torch.distributed as dist

    return dist.new_group(ranks=list(layout.driver_ranks), use_local_synchronization=True)

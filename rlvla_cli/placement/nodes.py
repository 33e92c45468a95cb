"""Which node runs what: the per-node roles of a resolved placement (one driver process per node).

Every node runs one *node driver*: the first trainer rank placed on that node. It owns the node's env workers
(shared-memory channels only reach processes of the same machine) and the node's rollout copies, and spawns the
node's other trainer ranks. Node 0's driver (trainer rank 0) leads: it runs the loop, computes advantages and
sends the commands. So each node needs an actor process, and env workers need rollout GPUs on their own node.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvla_cli.placement.resolve import ResolvedPlacement


@dataclass(frozen=True)
class NodeRole:
    """What node ``node`` runs.

    actor_ranks / actor_devices: the trainer (data-parallel) ranks on this node and their devices, rank order;
    the first is the node driver. env_workers: global env-worker indices (contiguous, ascending).
    rollout_devices: distinct devices of the node's rollout processes, in order (one rollout copy each).
    """

    node: int
    actor_ranks: tuple[int, ...]
    actor_devices: tuple[str, ...]
    env_workers: tuple[int, ...]
    rollout_devices: tuple[str, ...]

    @property
    def driver_rank(self) -> int:
        """The trainer rank of this node's driver (its first actor rank)."""
        return self.actor_ranks[0]

    @property
    def runs_rollout(self) -> bool:
        return bool(self.env_workers)


@dataclass(frozen=True)
class NodeLayout:
    """Roles of every node, the trainer world size and the total env workers (the single-node pool's size)."""

    nodes: tuple[NodeRole, ...]
    world: int
    total_env_workers: int

    @property
    def driver_ranks(self) -> tuple[int, ...]:
        return tuple(role.driver_rank for role in self.nodes)

    def node_of_rank(self, rank: int) -> NodeRole:
        return next(role for role in self.nodes if rank in role.actor_ranks)


def node_problems(placement: ResolvedPlacement) -> list[tuple[str, str]]:
    """(what is wrong, fix) for each node the multi-node runtime cannot drive; empty on one node."""
    if placement.num_nodes == 1:
        return []
    comps = placement.components
    per = placement.gpus_per_node
    problems = []
    for node in range(placement.num_nodes):
        names = {name: [p for p in comps[name].processes if p.node == node] for name in ("actor", "env", "rollout")}
        ranks = f"{node * per}-{(node + 1) * per - 1}"
        if not names["actor"]:
            problems.append((
                f"node {node} (GPU ranks {ranks}) has no actor process, but each node's driver is its first "
                "trainer rank (it owns the node's env workers and rollout copies)",
                f"let the actor range cover node {node}, e.g. `actor: 0-{placement.total_gpus - 1}`",
            ))
        elif bool(names["env"]) != bool(names["rollout"]):
            has, lacks = ("env", "rollout") if names["env"] else ("rollout", "env")
            problems.append((
                f"node {node} (GPU ranks {ranks}) runs {has} but no {lacks} process; env workers feed the rollout "
                "copies through shared memory, which does not cross machines",
                f"place env and rollout on the same nodes, e.g. `env,rollout: 0-{placement.total_gpus - 1}`",
            ))
    return problems


def node_layout(placement: ResolvedPlacement) -> NodeLayout:
    """The per-node roles of ``placement`` (check :func:`node_problems` first; raises ValueError when a node has
    no actor process)."""
    comps = placement.components
    roles = []
    for node in range(placement.num_nodes):
        actors = [p for p in comps["actor"].processes if p.node == node]
        if not actors:
            raise ValueError(f"node {node} has no actor process to drive it")
        envs = tuple(p.rank for p in comps["env"].processes if p.node == node)
        rollout = tuple(dict.fromkeys(p.device for p in comps["rollout"].processes if p.node == node))
        roles.append(NodeRole(node, tuple(p.rank for p in actors), tuple(p.device for p in actors), envs, rollout))
    return NodeLayout(tuple(roles), comps["actor"].num_processes, comps["env"].num_processes)

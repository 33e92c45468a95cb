"""Resolve a parsed placement to processes on nodes and GPUs, and classify its mode.

Process ``i`` of a component with ``n`` processes on GPUs ``g_0 < ... < g_{k-1}`` (``n = m k``) runs on
GPU ``g_{i // m}``: consecutive process ranks share a GPU, like ``CUDA_VISIBLE_DEVICES`` blocks.
Modes: *collocated* (every component on the same GPUs), *disaggregated* (pairwise disjoint GPUs),
*hybrid* (anything in between, e.g. ``env: 0-3, rollout: 4-7, actor: 0-7``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlvla_cli.errors import ConfigError
from rlvla_cli.placement.grammar import COMPONENTS, ComponentSpec, parse_component_placement

Mode = Literal["collocated", "disaggregated", "hybrid"]


@dataclass(frozen=True)
class ProcessSlot:
    """Where one process of a component runs.

    rank: the process rank within its component (0..n-1; the actor's data-parallel rank).
    gpu_rank: global GPU rank (``node * gpus_per_node + local_gpu``).
    node / local_gpu: the node index and the GPU index on that node.
    device: ``"cuda:<local_gpu>"``, or ``"cpu"`` in CPU mode.
    """

    rank: int
    gpu_rank: int
    node: int
    local_gpu: int
    device: str


@dataclass(frozen=True)
class ComponentPlacement:
    """The processes of one component (``env``, ``rollout`` or ``actor``)."""

    name: str
    processes: tuple[ProcessSlot, ...]
    gpu_ranks: tuple[int, ...]
    key: str

    @property
    def num_processes(self) -> int:
        return len(self.processes)

    @property
    def processes_per_gpu(self) -> int:
        return len(self.processes) // len(self.gpu_ranks)

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(sorted({p.node for p in self.processes}))

    def processes_on_gpu(self, gpu_rank: int) -> list[ProcessSlot]:
        return [p for p in self.processes if p.gpu_rank == gpu_rank]


@dataclass(frozen=True)
class ResolvedPlacement:
    """A whole resolved placement: components, cluster shape and mode."""

    components: dict[str, ComponentPlacement]
    num_nodes: int
    gpus_per_node: int
    mode: Mode
    cpu_mode: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def total_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def actor_dp_size(self) -> int:
        """Data-parallel size of the trainer: one DeepSpeed rank per actor process."""
        return self.components["actor"].num_processes

    @property
    def env_workers(self) -> int:
        return self.components["env"].num_processes

    @property
    def rollout_workers(self) -> int:
        return self.components["rollout"].num_processes

    @property
    def used_gpu_ranks(self) -> list[int]:
        return sorted({g for comp in self.components.values() for g in comp.gpu_ranks})

    def components_on_gpu(self, gpu_rank: int) -> list[str]:
        """Names of the components with a process on ``gpu_rank``, in :data:`COMPONENTS` order."""
        return [name for name, comp in self.components.items() if gpu_rank in comp.gpu_ranks]

    def shares_gpu(self, first: str, second: str) -> bool:
        return bool(set(self.components[first].gpu_ranks) & set(self.components[second].gpu_ranks))

    def to_dict(self) -> dict:
        """JSON-ready description (used by ``rlvla plan-gpus --json`` and the runtime's logs)."""
        return {
            "mode": self.mode,
            "num_nodes": self.num_nodes,
            "gpus_per_node": self.gpus_per_node,
            "cpu_mode": self.cpu_mode,
            "components": {
                name: {
                    "key": comp.key,
                    "gpu_ranks": list(comp.gpu_ranks),
                    "num_processes": comp.num_processes,
                    "processes": [
                        {"rank": p.rank, "gpu_rank": p.gpu_rank, "node": p.node, "local_gpu": p.local_gpu,
                         "device": p.device}
                        for p in comp.processes
                    ],
                }
                for name, comp in self.components.items()
            },
        }


def classify_mode(gpu_sets: list[set[int]]) -> Mode:
    """``collocated`` if all sets are equal, ``disaggregated`` if pairwise disjoint, else ``hybrid``."""
    if all(s == gpu_sets[0] for s in gpu_sets):
        return "collocated"
    for i, first in enumerate(gpu_sets):
        for second in gpu_sets[i + 1:]:
            if first & second:
                return "hybrid"
    return "disaggregated"


def _component_processes(spec: ComponentSpec, gpus_per_node: int, cpu_mode: bool) -> tuple[ProcessSlot, ...]:
    per_gpu = spec.processes_per_gpu
    slots = []
    for rank in range(spec.num_processes):
        gpu_rank = spec.gpu_ranks[rank // per_gpu]
        node, local = divmod(gpu_rank, gpus_per_node)
        device = "cpu" if cpu_mode else f"cuda:{local}"
        slots.append(ProcessSlot(rank=rank, gpu_rank=gpu_rank, node=node, local_gpu=local, device=device))
    return tuple(slots)


def resolve_placement(
    component_placement: dict[str, str | int], num_nodes: int, gpus_per_node: int, *, cpu_mode: bool = False
) -> ResolvedPlacement:
    """Resolve ``cluster.component_placement`` on ``num_nodes`` x ``gpus_per_node`` GPUs.

    In ``cpu_mode`` the "GPU ranks" are CPU process slots (a CPU-only machine, tests): the same
    resolution, every device ``"cpu"``, no GPU memory involved.
    """
    if num_nodes < 1:
        raise ConfigError(f"must be at least 1, got {num_nodes}", key="cluster.num_nodes", fix="set it to 1 or more")
    if gpus_per_node < 1:
        raise ConfigError(
            f"must be at least 1, got {gpus_per_node}", key="cluster.num_gpus_per_node",
            fix="set it (or --gpus) to the GPUs per node, at least 1",
        )
    specs = parse_component_placement(component_placement, num_nodes * gpus_per_node)
    components = {
        name: ComponentPlacement(
            name=name, processes=_component_processes(spec, gpus_per_node, cpu_mode), gpu_ranks=spec.gpu_ranks,
            key=spec.key,
        )
        for name, spec in specs.items()
    }
    mode = classify_mode([set(components[name].gpu_ranks) for name in COMPONENTS])
    used = {g for comp in components.values() for g in comp.gpu_ranks}
    warnings = []
    idle = num_nodes * gpus_per_node - len(used)
    if idle:
        warnings.append(f"{idle} of {num_nodes * gpus_per_node} GPUs get no component and stay idle.")
    return ResolvedPlacement(
        components=components, num_nodes=num_nodes, gpus_per_node=gpus_per_node, mode=mode, cpu_mode=cpu_mode,
        warnings=warnings,
    )

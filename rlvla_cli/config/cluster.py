"""`cluster`: how many machines and GPUs, and which components run on which GPUs."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from rlvla_cli.config.base import StrictModel
from rlvla_cli.config.messages import suggestion_text

COMPONENTS = ("actor", "env", "rollout")
# One rank spec: `all`, or comma-separated ints / ranges, optionally `:process ranks` in the same syntax.
_RANKS = r"(all|\d+(-\d+)?(,\d+(-\d+)?)*)"
_PLACEMENT_VALUE = re.compile(rf"^{_RANKS}(:{_RANKS})?$")


class ClusterConfig(StrictModel):
    """Nodes, GPUs and the component placement (RLinf's `cluster` section)."""

    num_nodes: int = Field(1, ge=1, description="Number of machines (nodes) taking part in the run.")
    num_gpus_per_node: int | None = Field(
        None,
        ge=0,
        description="GPUs per node; null means detect the GPUs present at launch (0 runs everything on the CPU).",
    )
    component_placement: dict[str, str | int] = Field(
        default_factory=lambda: {"actor,env,rollout": "all"},
        description=(
            "Component -> GPU ranks. Keys are comma-separated components (actor, env, rollout); values are a rank "
            "`3`, a range `0-3`, a list `0,2,4-5`, or `all`, optionally followed by `:process ranks` "
            "(e.g. `0-3:0-7` puts 8 processes on 4 GPUs). Ranks count across nodes in order."
        ),
    )
    hosts: list[str] = Field(
        default_factory=list,
        description="Host names of the nodes for multi-node runs, in rank order (first is the master); "
        "empty on one node.",
    )
    master_addr: str | None = Field(
        None, description="Address of the rendezvous master for multi-node runs; null uses the first host."
    )
    master_port: int = Field(
        29500, ge=1, le=65534,
        description="TCP port of the launcher's rendezvous (torchrun) on the master; multi-node runs put the trainer "
        "process group on the next port (master_port + 1).",
    )
    collective_timeout_s: float = Field(
        1800.0, gt=0,
        description="Seconds any torch.distributed collective or transfer may wait before the run stops with an "
        "error (a dead or stuck node driver then ends the run on every node instead of hanging). Must exceed "
        "the longest rollout of one node, since the first node waits that long for the others' batches.",
    )

    @field_validator("component_placement", mode="before")
    @classmethod
    def _no_empty_ranks(cls, placement: object) -> object:
        if isinstance(placement, dict) and any(value is None for value in placement.values()):
            raise ValueError(
                "a component has no GPU ranks; note that YAML flow style `{actor,env,rollout: all}` splits the key "
                "at the commas: write the placement as an indented block or quote the key"
            )
        return placement

    @field_validator("component_placement")
    @classmethod
    def _check_placement(cls, placement: dict[str, str | int]) -> dict[str, str | int]:
        if not placement:
            raise ValueError("no component is placed; give e.g. {'actor,env,rollout': 'all'}")
        seen: set[str] = set()
        for key, value in placement.items():
            names = [name.strip() for name in key.split(",")]
            for name in names:
                if name not in COMPONENTS:
                    hint = suggestion_text(name, COMPONENTS)
                    raise ValueError(f"unknown component `{name}` in key `{key}`{hint}; valid: {', '.join(COMPONENTS)}")
                if name in seen:
                    raise ValueError(f"component `{name}` is placed twice")
                seen.add(name)
            text = str(value).replace(" ", "")
            if isinstance(value, int) and value < 0 or not _PLACEMENT_VALUE.match(text):
                raise ValueError(
                    f"`{key}: {value}` is not a GPU rank spec; use `0`, `0-3`, `0,2,4-5`, `all` or `0-3:0-7`"
                )
        missing = [name for name in COMPONENTS if name not in seen]
        if missing:
            raise ValueError(f"no GPUs given for {', '.join(missing)}; each of actor, env, rollout needs a place")
        return placement

    @field_validator("hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        if len(set(hosts)) != len(hosts):
            raise ValueError("a host name appears twice")
        return hosts

    @model_validator(mode="after")
    def _hosts_match_nodes(self) -> ClusterConfig:
        if self.hosts and len(self.hosts) != self.num_nodes:
            raise ValueError(
                f"`hosts` lists {len(self.hosts)} machines but `num_nodes` is {self.num_nodes}; list one host per node"
            )
        if self.num_nodes > 1 and not (self.hosts or self.master_addr):
            raise ValueError(
                f"{self.num_nodes} nodes need a rendezvous address: list the machines in `hosts` or set `master_addr`"
            )
        return self

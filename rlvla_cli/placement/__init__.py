"""Placement: the grammar of ``cluster.component_placement``, its resolution to nodes / GPUs / processes,
the memory model and the GPU planner behind ``rlvla plan-gpus``, ``rlvla config validate`` and ``rlvla train``.

Nothing here imports torch at module level; the planner works without a GPU.
"""

from rlvla_cli.placement.grammar import COMPONENTS, ComponentSpec, parse_component_placement
from rlvla_cli.placement.planner import (
    OffloadDecision,
    Plan,
    detect_gpus,
    plan,
    slots_needed,
    validate_placement_rules,
)
from rlvla_cli.placement.resolve import ComponentPlacement, ProcessSlot, ResolvedPlacement, resolve_placement
from rlvla_cli.placement.rules import Refusal

__all__ = [
    "COMPONENTS",
    "ComponentPlacement",
    "ComponentSpec",
    "OffloadDecision",
    "Plan",
    "ProcessSlot",
    "Refusal",
    "ResolvedPlacement",
    "detect_gpus",
    "parse_component_placement",
    "plan",
    "resolve_placement",
    "slots_needed",
    "validate_placement_rules",
]

"""The GPU planner: placement + divisibility rules + predicted memory + offload decisions, in one ``Plan``.

``plan`` never raises for a config that merely does not fit: refusals are collected so ``rlvla plan-gpus``
can print the table next to them. ``validate_placement_rules`` raises the first refusal as a ConfigError.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlvla_cli.errors import UserError
from rlvla_cli.placement import memory as mem
from rlvla_cli.placement.auto_micro import MicroChoice, choose_micro_batch, settings_peak
from rlvla_cli.placement.estimate import (
    GpuMemory,
    MemorySettings,
    gpu_memories,
    process_memories,
    settings_from_config,
)
from rlvla_cli.placement.profiles import ModelProfile, model_profile
from rlvla_cli.placement.resolve import ResolvedPlacement, resolve_placement
from rlvla_cli.placement.rules import Refusal, placement_rules
from rlvla_cli.placement.suggest import suggest_fixes

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig

HEADROOM_WARNING = 0.9
"""Warn when the predicted peak uses more than this share of a GPU (allocator fragmentation is not modelled)."""


@dataclass(frozen=True)
class OffloadDecision:
    """What happens to one component's memory while the other phase runs on its GPUs."""

    component: str
    shares_gpu: bool
    enabled: bool
    applied: bool
    needed: bool | None

    def describe(self) -> str:
        """``no (own GPUs)``, ``yes (needed)``, ``yes (not needed)``, ``NEEDED, disabled``, ``no``; ``needed`` is
        None when the GPU memory is unknown."""
        if not self.shares_gpu:
            return "no (own GPUs)"
        if self.needed is None:
            return "yes" if self.applied else "no"
        if self.applied:
            return "yes (needed)" if self.needed else "yes (not needed)"
        return "NEEDED, disabled" if self.needed else "no"


@dataclass
class Plan:
    """A planned run: placement, per-GPU memory by phase, offload decisions, refusals, warnings."""

    placement: ResolvedPlacement
    profile: ModelProfile
    settings: MemorySettings
    gpu_mem_bytes: int | None
    gpus: list[GpuMemory]
    offload: dict[str, OffloadDecision]
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    micro_choice: MicroChoice | None = None  # set when actor.micro_batch_size was `auto`

    @property
    def ok(self) -> bool:
        return not self.refusals

    def to_dict(self) -> dict:
        """JSON-ready plan (``rlvla plan-gpus --json``); byte counts are integers."""
        return {
            "ok": self.ok,
            "placement": self.placement.to_dict(),
            "model": {"name": self.profile.name, "total_params": self.profile.total_params,
                      "trainable_params": self.profile.trainable_params},
            "gpu_mem_bytes": self.gpu_mem_bytes,
            "offload": {k: {**dataclasses.asdict(v), "decision": v.describe()} for k, v in self.offload.items()},
            "gpus": [
                {"gpu_rank": g.gpu_rank, "node": g.node, "local_gpu": g.local_gpu, "processes": g.processes,
                 "training_bytes": g.training, "rollout_bytes": g.rollout, "training_total": g.training_total,
                 "rollout_total": g.rollout_total, "peak_bytes": g.peak}
                for g in self.gpus
            ],
            "refusals": [r.to_dict() for r in self.refusals],
            "warnings": self.warnings,
            "suggestions": self.suggestions,
        }


def detect_gpus() -> tuple[int, int | None]:
    """(visible CUDA devices, memory of device 0 in bytes or None) without failing on a CPU-only torch."""
    try:
        import torch

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            return count, torch.cuda.get_device_properties(0).total_memory if count else None
    except Exception:  # a broken CUDA install must not break planning on the CPU
        pass
    return 0, None


def offload_flags(placement: ResolvedPlacement, s: MemorySettings) -> tuple[bool, bool, bool, bool]:
    """(actor shares a GPU, rollout shares with the actor, actor offload applied, rollout offload applied)."""
    actor_shares = placement.shares_gpu("actor", "rollout") or placement.shares_gpu("actor", "env")
    rollout_shares = placement.shares_gpu("rollout", "actor")
    return actor_shares, rollout_shares, s.actor_offload and actor_shares, s.rollout_offload and rollout_shares


def estimate(placement: ResolvedPlacement, profile: ModelProfile, s: MemorySettings) -> list[GpuMemory]:
    """Per-GPU memory with the offload the settings ask for (applied only where components share GPUs)."""
    _, _, actor_off, rollout_off = offload_flags(placement, s)
    procs = process_memories(placement, profile, s)
    return gpu_memories(placement, procs, actor_offload=actor_off, rollout_offload=rollout_off)


def plan(
    cfg: RootConfig, gpus_per_node: int | None = None, num_nodes: int | None = None, gpu_mem_bytes: int | None = None,
    *, cpu_mode: bool = False,
) -> Plan:
    """Plan ``cfg`` on ``num_nodes`` x ``gpus_per_node`` GPUs of ``gpu_mem_bytes`` each.

    None falls back to ``cluster.num_nodes`` / ``cluster.num_gpus_per_node``; ``gpu_mem_bytes=None`` skips
    the memory check (memory is still predicted). Raises ConfigError for a broken placement string and
    UserError when the GPU count is unknown; every other problem is a ``Refusal`` in the returned plan.
    """
    num_nodes = num_nodes or cfg.cluster.num_nodes
    gpus_per_node = gpus_per_node if gpus_per_node is not None else cfg.cluster.num_gpus_per_node
    if gpus_per_node is None:
        raise UserError(
            "the number of GPUs per node is unknown (cluster.num_gpus_per_node is null)",
            fix="pass --gpus N or set cluster.num_gpus_per_node",
        )
    placement = resolve_placement(cfg.cluster.component_placement, num_nodes, gpus_per_node, cpu_mode=cpu_mode)
    profile = model_profile(cfg.actor.model)
    choice = resolve_micro_batch(cfg, placement, None if cpu_mode else gpu_mem_bytes, profile)
    settings = settings_from_config(cfg)
    result = Plan(placement, profile, settings, gpu_mem_bytes, [], {}, placement_rules(cfg, placement),
                  list(placement.warnings), micro_choice=choice)
    if cpu_mode:
        return result
    actor_shares, rollout_shares, actor_off, rollout_off = offload_flags(placement, settings)
    result.gpus = estimate(placement, profile, settings)
    need_actor, need_rollout = _offload_needs(placement, profile, settings, gpu_mem_bytes)
    result.offload = {
        "actor": OffloadDecision("actor", actor_shares, settings.actor_offload, actor_off, need_actor),
        "rollout": OffloadDecision("rollout", rollout_shares, settings.rollout_offload, rollout_off, need_rollout),
    }
    if gpu_mem_bytes:
        _memory_verdict(result, cfg, gpu_mem_bytes)
    return result


def resolve_micro_batch(
    cfg: RootConfig, placement: ResolvedPlacement, gpu_mem_bytes: int | None, profile: ModelProfile | None = None,
) -> MicroChoice | None:
    """``actor.micro_batch_size: auto`` -> the planner's pick (``auto_micro``), written into ``cfg`` (micro-batch
    and, for models that have it, ``actor.model.gradient_checkpointing``); None (``cfg`` untouched) for a number."""
    if cfg.actor.micro_batch_size != "auto":
        return None
    # micro x dp must divide the global batch, or a step's samples when a step collects fewer (rules.batch_rules)
    per_rank = max(1, min(cfg.actor.global_batch_size, cfg.samples_per_step) // max(1, placement.actor_dp_size))
    model = cfg.actor.model
    can_checkpoint = hasattr(model, "gradient_checkpointing") and not (
        model.model_type == "openpi" and getattr(model, "is_lora", False))  # openpi: no checkpointing with LoRA
    peak_for = None
    if gpu_mem_bytes and not placement.cpu_mode:
        profile = profile or model_profile(model)
        peak_for = settings_peak(placement, profile, settings_from_config(cfg), estimate)
    choice = choose_micro_batch(per_rank, gpu_mem_bytes if peak_for else None, peak_for or (lambda m, c: 0),
                                allow_checkpointing=can_checkpoint)
    cfg.actor.micro_batch_size = choice.micro_batch_size
    if hasattr(model, "gradient_checkpointing") and peak_for is not None:
        model.gradient_checkpointing = choice.checkpointing
    return choice


def _offload_needs(
    placement: ResolvedPlacement, profile: ModelProfile, s: MemorySettings, cap: int | None
) -> tuple[bool | None, bool | None]:
    """Whether keeping the actor (rollout) resident overflows the rollout (training) phase of some GPU
    (None, None when the GPU memory is unknown)."""
    if not cap:
        return None, None
    resident = estimate(placement, profile, dataclasses.replace(s, actor_offload=False, rollout_offload=False))
    shared = [g for g in resident if len(g.processes) > 1]
    need_actor = any(g.rollout_total > cap and "actor" in g.processes for g in shared)
    need_rollout = any(g.training_total > cap and "rollout" in g.processes for g in shared)
    return need_actor, need_rollout


def _memory_verdict(result: Plan, cfg: RootConfig, cap: int) -> None:
    """Add OOM / offload refusals, headroom warnings and suggestions to ``result``.

    OOM when even offloading every sharing component overflows a GPU; otherwise an offload refusal for
    each offload that is needed but disabled.
    """
    best = estimate(result.placement, result.profile,
                    dataclasses.replace(result.settings, actor_offload=True, rollout_offload=True))
    worst = max(result.gpus, key=lambda g: g.peak, default=None)
    if worst is None:
        return
    best_peak = max(g.peak for g in best)
    if best_peak > cap:
        phase = "training" if worst.training_total >= worst.rollout_total else "rollout"
        parts = worst.training if phase == "training" else worst.rollout
        detail = ", ".join(f"{c} {mem.format_bytes(b)}" for c, b in parts.items())
        offload_note = "" if best_peak == worst.peak else f" (still {mem.format_bytes(best_peak)} with offload)"
        result.refusals.append(Refusal(
            "memory", "cluster.component_placement",
            f"out of memory: the predicted {phase}-phase peak on GPU {worst.gpu_rank} (node {worst.node}) is "
            f"{mem.format_bytes(worst.peak)} ({detail}){offload_note}, more than the {mem.format_bytes(cap)} "
            "the GPU has",
            "apply one of the suggestions (LoRA, offload, a smaller micro batch, ZeRO stage 3, more GPUs)",
        ))
    else:
        for name, decision in result.offload.items():
            if decision.needed and not decision.applied:
                phase = "rollout" if name == "actor" else "training"
                result.refusals.append(Refusal(
                    "offload", f"{name}.enable_offload",
                    f"components share GPUs and the {phase} phase only fits ({mem.format_bytes(worst.peak)} "
                    f"predicted now, {mem.format_bytes(best_peak)} with offload, of {mem.format_bytes(cap)}) if the "
                    f"{name} moves its state to the CPU meanwhile, but {name}.enable_offload is false",
                    f"set {name}.enable_offload=true",
                ))
    for name, decision in result.offload.items():
        if decision.applied and not decision.needed:
            result.warnings.append(f"{name}.enable_offload is on but the GPUs fit without it; turning it off saves "
                                   "the copy time each step.")
    if not result.refusals and worst.peak > HEADROOM_WARNING * cap:
        result.warnings.append(
            f"GPU {worst.gpu_rank} is predicted at {mem.format_bytes(worst.peak)} of {mem.format_bytes(cap)} "
            f"({worst.peak / cap:.0%}); fragmentation may still run it out of memory."
        )
    if any(r.kind in ("memory", "offload") for r in result.refusals):
        result.suggestions = suggest_fixes(cfg, result.placement, result.settings, cap, estimate)


def validate_placement_rules(cfg: RootConfig, gpus_per_node: int | None = None) -> None:
    """Raise the first placement refusal of ``cfg`` as a ConfigError (``rlvla config validate``, ``train``).

    The GPU count comes from ``gpus_per_node``, else ``cluster.num_gpus_per_node``, else the GPUs present;
    on a machine without GPUs the placement is checked in CPU mode (ranks as CPU slots, no memory check).
    Memory is checked only when a GPU is present to read its size from.
    """
    detected, detected_mem = detect_gpus()
    gpus = gpus_per_node if gpus_per_node is not None else cfg.cluster.num_gpus_per_node
    cpu_mode = False
    if gpus is None:
        gpus = detected
    if not gpus:
        gpus, cpu_mode = slots_needed(cfg.cluster.component_placement), True
    if cpu_mode:  # divisibility only: no memory to check, so skip sizing the model
        placement = resolve_placement(cfg.cluster.component_placement, cfg.cluster.num_nodes, gpus, cpu_mode=True)
        refusals = placement_rules(cfg, placement)
    else:
        refusals = plan(cfg, gpus, None, detected_mem).refusals
    if refusals:
        raise refusals[0].to_error()


def slots_needed(component_placement: dict[str, str | int]) -> int:
    """Fewest GPU slots a placement names (the highest explicit rank + 1; 1 when it only says ``all``)."""
    import re

    highest = 0
    for value in component_placement.values():
        gpu_part = str(value).split(":")[0]
        numbers = [int(n) for n in re.findall(r"\d+", gpu_part)]
        highest = max([highest, *(n + 1 for n in numbers)])
    return max(highest, 1)



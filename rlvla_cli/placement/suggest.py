"""What-if suggestions for a plan that does not fit: re-estimate with changed settings and keep what fits.

Each suggestion is one line: the overrides to pass (``a.b=c``) and the predicted peak with them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from rlvla_cli.placement import memory as mem
from rlvla_cli.placement.estimate import MemorySettings, actor_process_memory
from rlvla_cli.placement.profiles import ModelProfile, model_profile
from rlvla_cli.placement.resolve import ResolvedPlacement

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig

Candidate = tuple[str, dict, dict]
"""(overrides text, MemorySettings changes, actor.model changes)."""


def candidates(cfg: RootConfig, placement: ResolvedPlacement, s: MemorySettings) -> list[Candidate]:
    """Changes that lower memory, cheapest in quality/speed first; only those not already in effect."""
    model = cfg.actor.model
    out: list[Candidate] = []
    if not s.actor_offload and (placement.shares_gpu("actor", "rollout") or placement.shares_gpu("actor", "env")):
        out.append(("actor.enable_offload=true", {"actor_offload": True}, {}))
    if not s.rollout_offload and placement.shares_gpu("rollout", "actor"):
        out.append(("rollout.enable_offload=true", {"rollout_offload": True}, {}))
    if not model.is_lora and model.model_type != "small":
        out.append(("actor.model.is_lora=true", {}, {"is_lora": True}))
    if s.micro_batch_size > 1:
        out.append(("actor.micro_batch_size=1", {"micro_batch_size": 1}, {}))
    if not s.checkpointing and not (model.model_type == "openpi" and model.is_lora):
        out.append(("actor.gradient_checkpointing=true", {"checkpointing": True}, {}))
    if not s.offload_optimizer:
        out.append(("actor.deepspeed.offload_optimizer=true", {"offload_optimizer": True}, {}))
    if not s.offload_param:
        out.append((
            "actor.deepspeed.zero_stage=3 actor.deepspeed.offload_param=true",
            {"zero_stage": 3, "offload_param": True}, {},
        ))
    return out


def _peak(cfg: RootConfig, placement: ResolvedPlacement, s: MemorySettings, model_changes: dict,
          estimate_fn: Callable) -> int:
    profile = model_profile(cfg.actor.model.model_copy(update=model_changes)) if model_changes else None
    if profile is None:
        profile = model_profile(cfg.actor.model)
    return max(g.peak for g in estimate_fn(placement, profile, s))


def suggest_fixes(
    cfg: RootConfig, placement: ResolvedPlacement, s: MemorySettings, cap: int, estimate_fn: Callable
) -> list[str]:
    """Single changes that fit, else the shortest cumulative combination that fits, plus a more-GPUs line."""
    lines = []
    cands = candidates(cfg, placement, s)
    for text, s_changes, m_changes in cands:
        peak = _peak(cfg, placement, dataclasses.replace(s, **s_changes), m_changes, estimate_fn)
        if peak <= cap:
            lines.append(f"`{text}`: predicted peak {mem.format_bytes(peak)} of {mem.format_bytes(cap)}")
    if not lines:
        s_acc, m_acc, texts = s, {}, []
        for text, s_changes, m_changes in cands:
            s_acc, m_acc = dataclasses.replace(s_acc, **s_changes), {**m_acc, **m_changes}
            texts.append(text)
            peak = _peak(cfg, placement, s_acc, m_acc, estimate_fn)
            if peak <= cap:
                lines.append(f"`{' '.join(texts)}`: predicted peak {mem.format_bytes(peak)} of "
                             f"{mem.format_bytes(cap)}")
                break
    more = _actor_gpus_needed(model_profile(cfg.actor.model), s, cap)
    if more:
        gpus, per_gpu = more
        lines.append(
            f"give the actor {gpus} GPUs of its own with `actor.deepspeed.zero_stage=3` (ZeRO shards weights, "
            f"grads and optimizer over them): about {mem.format_bytes(per_gpu)} per actor GPU"
        )
    if not lines:
        lines.append("nothing tried fits: use GPUs with more memory or a smaller model (`actor.model.size`)")
    return lines


def _actor_gpus_needed(profile: ModelProfile, s: MemorySettings, cap: int, limit: int = 64) -> tuple[int, int] | None:
    """Smallest power-of-two data-parallel size at which one actor rank alone fits ``cap`` with ZeRO-3."""
    s3 = dataclasses.replace(s, zero_stage=3)
    dp = 2
    while dp <= limit:
        state, acts = actor_process_memory(profile, s3, dp)
        per_gpu = sum(state.values()) + sum(acts.values()) + mem.CUDA_CONTEXT_BYTES
        if per_gpu <= cap:
            return dp, per_gpu
        dp *= 2
    return None

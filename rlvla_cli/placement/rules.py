"""Rules that need the resolved placement (what each node runs, worker counts, data-parallel size).

Each broken rule becomes a :class:`Refusal`: the key to change, one sentence saying what is wrong, the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlvla_cli.errors import ConfigError
from rlvla_cli.placement.resolve import ResolvedPlacement

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig


@dataclass(frozen=True)
class Refusal:
    """Why a config cannot run as planned. kind: placement | divisibility | memory | offload."""

    kind: str
    key: str
    reason: str
    fix: str

    def to_error(self, file: str | None = None) -> ConfigError:
        return ConfigError(self.reason, file=file, key=self.key, fix=self.fix)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "reason": self.reason, "fix": self.fix}


def _multiples(step: int, near: int) -> str:
    low = max(step, near // step * step)
    high = low + step if low >= near else low
    return f"{low}" if low == high else f"{low} or {high}"


def env_rules(cfg: RootConfig, placement: ResolvedPlacement) -> list[Refusal]:
    """Envs split evenly over env workers x pipeline stages, over rollout workers, and into GRPO groups."""
    out = []
    stages = cfg.rollout.pipeline_stage_num
    workers, rollouts = placement.env_workers, placement.rollout_workers
    for name in ("train", "eval"):
        env = getattr(cfg.env, name)
        total, key = env.total_num_envs, f"env.{name}.total_num_envs"
        split = workers * stages
        if total % split:
            out.append(Refusal(
                "divisibility", key,
                f"{total} envs cannot be split evenly over {workers} env worker(s) x {stages} pipeline stage(s) "
                f"(rollout.pipeline_stage_num)",
                f"use a multiple of {split} envs, e.g. {_multiples(split, total)}, or change the env placement",
            ))
            continue
        if (total // stages) % rollouts:
            step = math.lcm(workers, rollouts) * stages
            out.append(Refusal(
                "divisibility", key,
                f"the {total // stages} envs of a pipeline stage cannot be shared evenly by {rollouts} rollout "
                "worker(s)",
                f"use a multiple of {step} envs, e.g. {_multiples(step, total)}, or change the rollout placement",
            ))
            continue
        per_group = total // split
        if name == "train" and env.group_size > 1 and per_group % env.group_size:
            step = split * env.group_size
            out.append(Refusal(
                "divisibility", key,
                f"each env worker's stage holds {per_group} envs, which does not split into GRPO groups of "
                f"{env.group_size} (groups must not straddle workers)",
                f"use a multiple of {step} envs, e.g. {_multiples(step, total)}",
            ))
    return out


def batch_rules(cfg: RootConfig, placement: ResolvedPlacement) -> list[Refusal]:
    """global batch = k x micro batch x data-parallel size; rollout samples = k x global batch."""
    actor, dp = cfg.actor, placement.actor_dp_size
    step = (1 if actor.micro_batch_size == "auto" else actor.micro_batch_size) * dp  # auto: resolved to a divisor
    if actor.global_batch_size % step:
        return [Refusal(
            "divisibility", "actor.global_batch_size",
            f"global_batch_size {actor.global_batch_size} is not a multiple of micro_batch_size "
            f"{actor.micro_batch_size} x {dp} actor process(es) (the data-parallel size)",
            f"use a multiple of {step}, e.g. {_multiples(step, actor.global_batch_size)}",
        )]
    train = cfg.env.train
    chunk_steps, samples = cfg.chunk_steps_per_rollout, cfg.samples_per_step
    if samples >= actor.global_batch_size and samples % actor.global_batch_size:
        return [Refusal(
            "divisibility", "actor.global_batch_size",
            f"a training step collects {samples} samples (envs {train.total_num_envs} x {chunk_steps} chunk steps x "
            f"rollout_epoch {train.rollout_epoch}), not a whole number of global batches of "
            f"{actor.global_batch_size}",
            f"use a global_batch_size that divides {samples} and is a multiple of {step}",
        )]
    if samples < actor.global_batch_size and samples % step:
        return [Refusal(
            "divisibility", "actor.global_batch_size",
            f"a training step collects only {samples} samples, which do not split into micro batches of "
            f"{actor.micro_batch_size} on {dp} actor process(es)",
            f"use a global_batch_size that divides {samples} and is a multiple of {step}",
        )]
    return []


def node_rules(placement: ResolvedPlacement) -> list[Refusal]:
    """Several nodes: each needs a driver (an actor process) and keeps env workers next to rollout copies
    (see ``placement/nodes.py``); any component may sit on any node otherwise."""
    from rlvla_cli.placement.nodes import node_problems

    return [Refusal("placement", "cluster.component_placement", reason, fix)
            for reason, fix in node_problems(placement)]


def placement_rules(cfg: RootConfig, placement: ResolvedPlacement) -> list[Refusal]:
    """Every placement rule, in the order a user should fix them."""
    return node_rules(placement) + env_rules(cfg, placement) + batch_rules(cfg, placement)

"""Shared helpers of the runtime tests: the tiny policy on sys.path and synthetic rollouts."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # tiny_policy is importable by name (also in spawned children)

from tiny_policy import TinyPolicy  # noqa: E402

from rlvla_cli.algorithms import RolloutBatch  # noqa: E402


def synthetic_batch(policy: TinyPolicy, steps: int = 4, envs: int = 8, seed: int = 0) -> RolloutBatch:
    """A real rollout of ``policy`` on random states with random rewards (shapes as the runtime builds them)."""
    gen = torch.Generator().manual_seed(seed)
    records = [policy.predict({"states": torch.randn(envs, 3, generator=gen)}) for _ in range(steps)]
    chunks = policy.num_action_chunks
    terminations = torch.zeros(steps, envs, chunks, dtype=torch.bool)
    terminations[-1, : envs // 2, -1] = True
    return RolloutBatch(
        forward_inputs={k: torch.stack([r.forward_inputs[k] for r in records]) for k in records[0].forward_inputs},
        old_logprobs=torch.stack([r.logprobs for r in records]),
        rewards=torch.rand(steps, envs, chunks, generator=gen),
        terminations=terminations,
        truncations=torch.zeros(steps, envs, chunks, dtype=torch.bool),
        loss_mask=torch.ones(steps, envs, dtype=torch.bool),
        old_values=torch.stack([r.values for r in records]),
        bootstrap_values=torch.zeros(steps, envs, 1),
        last_values=torch.zeros(envs, 1),
    ).validate()

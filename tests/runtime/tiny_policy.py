"""A tiny Gaussian VLAPolicy on ``states`` used by the runtime tests (real torch module, real gradients)."""

from __future__ import annotations

import torch
from torch import nn

from rlvla_cli.algorithms import RolloutBatch
from rlvla_cli.models.base import EvaluateOutput, PolicyOutput, VLAPolicy


class TinyPolicy(VLAPolicy):
    """MLP mean over ``states`` ``[B, S]``, learned log-std; actions ``[B, C, A]``; value ``[B, 1]``.

    ``nan_on_evaluate``: make ``evaluate`` return NaN log-probs (tests of the skipped-update path).
    """

    def __init__(self, state_dim: int = 3, action_dim: int = 7, num_action_chunks: int = 2, hidden: int = 16):
        super().__init__()
        self.action_dim, self.num_action_chunks = action_dim, num_action_chunks
        out = action_dim * num_action_chunks
        self.body = nn.Sequential(nn.Linear(state_dim, hidden), nn.Tanh(), nn.Linear(hidden, out))
        self.log_std = nn.Parameter(torch.full((action_dim,), -0.5))
        self.value_head = nn.Linear(state_dim, 1)
        self.nan_on_evaluate = False

    def _dist(self, states: torch.Tensor) -> torch.distributions.Normal:
        mean = self.body(states.float()).view(-1, self.num_action_chunks, self.action_dim)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    @torch.no_grad()
    def predict(self, obs, mode="train", sampling=None) -> PolicyOutput:
        dist = self._dist(obs["states"])
        actions = dist.sample() if mode == "train" else dist.mean
        return PolicyOutput(
            actions=actions, logprobs=dist.log_prob(actions), values=self.value_head(obs["states"].float()),
            forward_inputs={"states": obs["states"].float().clone(), "actions": actions.clone()},
        )

    def evaluate(self, forward_inputs, compute_entropy=True, compute_values=True) -> EvaluateOutput:
        dist = self._dist(forward_inputs["states"])
        logprobs = dist.log_prob(forward_inputs["actions"])
        if self.nan_on_evaluate:
            logprobs = logprobs * float("nan")
        return EvaluateOutput(
            logprobs=logprobs, entropy=dist.entropy() if compute_entropy else None,
            values=self.value_head(forward_inputs["states"]) if compute_values else None,
        )

    @torch.no_grad()
    def get_values(self, obs) -> torch.Tensor:
        return self.value_head(obs["states"].float())

    def value_head_parameters(self):
        return list(self.value_head.parameters())


def tiny_factory(cfg, device: str) -> TinyPolicy:
    """Runner policy factory: a TinyPolicy sized from ``actor.model`` (states of the built-in task)."""
    model = cfg.actor.model
    return TinyPolicy(state_dim=model.state_dim, action_dim=model.action_dim,
                      num_action_chunks=model.num_action_chunks).to(device)


def nan_factory(cfg, device: str) -> TinyPolicy:
    """Like ``tiny_factory`` but every loss is NaN (tests of the skipped-update path)."""
    policy = tiny_factory(cfg, device)
    policy.nan_on_evaluate = True
    return policy


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

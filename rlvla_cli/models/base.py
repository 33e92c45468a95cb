"""The policy contract every VLA implements (OpenVLA, OpenVLA-OFT, pi0 / pi0.5, small).

Shapes: B batch, C action chunks per prediction (``num_action_chunks``), A action dims (``action_dim``),
V value outputs per observation (1 for a chunk-level value, C for an action-level one).
Log-probs and entropies are always returned per action dimension (token level), ``[B, C, A]``;
``rlvla_cli.algorithms`` aggregates them to the configured ``logprob_type`` / ``entropy_type``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

Obs = dict[str, Any]
Mode = Literal["train", "eval"]


@dataclass
class PolicyOutput:
    """Result of ``predict``.

    actions: float32 ``[B, C, A]`` in env units (un-normalised).
    logprobs: float32 ``[B, C, A]`` of the sampled actions (token level).
    values: float32 ``[B, V]`` or None when the policy has no value head.
    forward_inputs: batch-first tensors ``{name: [B, ...]}``: everything ``evaluate`` needs to recompute
    the log-probs of these exact actions (action tokens, or the flow chain and its noise indices).
    """

    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor | None
    forward_inputs: dict[str, torch.Tensor]


@dataclass
class EvaluateOutput:
    """Result of ``evaluate``: logprobs ``[B, C, A]``, entropy ``[B, C, A]`` or None, values ``[B, V]`` or None."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    values: torch.Tensor | None


class VLAPolicy(nn.Module, ABC):
    """A VLA policy with an optional value head."""

    action_dim: int
    num_action_chunks: int

    @abstractmethod
    @torch.no_grad()
    def predict(self, obs: Obs, mode: Mode = "train") -> PolicyOutput:
        """Sample (``train``) or act greedily (``eval``) for a batch of observations."""

    @abstractmethod
    def evaluate(
        self, forward_inputs: dict[str, torch.Tensor], compute_entropy: bool = True, compute_values: bool = True
    ) -> EvaluateOutput:
        """Recompute log-probs (with grad) of the actions stored in ``forward_inputs``."""

    @abstractmethod
    @torch.no_grad()
    def get_values(self, obs: Obs) -> torch.Tensor:
        """Values ``[B, V]`` of observations (truncation bootstrap from final observations)."""

    def value_head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained with ``actor.optim.value_lr`` (empty without a value head)."""
        return []

    def policy_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters other than the value head (LoRA adapters, expert, ...)."""
        value_ids = {id(p) for p in self.value_head_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in value_ids]

"""The vectorised-environment contract every simulator adapter implements.

Observation dict (batch first, torch tensors on the CPU):

| key                 | type / shape              | note                                         |
| ------------------- | ------------------------- | -------------------------------------------- |
| ``main_images``     | uint8 ``[B, H, W, 3]``    | third-person camera                          |
| ``wrist_images``    | uint8 ``[B, H, W, 3]``    | optional (LIBERO, pi0)                       |
| ``states``          | float32 ``[B, S]``        | proprioception                               |
| ``task_descriptions`` | ``list[str]`` of length B | natural-language instruction               |

Actions are float32 ``[B, chunk, action_dim]`` in the env's units (7-D: xyz, rpy, gripper).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

Obs = dict[str, Any]


@dataclass
class ObsSpec:
    """Static shapes of one env's observation, used to allocate shared-memory buffers once.

    image_shape: (H, W, 3); state_dim: S; has_wrist: whether ``wrist_images`` is present.
    """

    image_shape: tuple[int, int, int]
    state_dim: int
    has_wrist: bool = False
    max_instruction_chars: int = 256


@dataclass
class ChunkStepResult:
    """What ``VecEnv.chunk_step`` returns for a chunk of C actions on B envs.

    obs: the observation after the chunk (for envs that auto-reset, the first obs of the new episode).
    rewards: float32 ``[B, C]``; terminations / truncations: bool ``[B, C]`` (kept apart: truncation
    bootstraps with V(final obs), termination does not).
    infos: ``success`` bool ``[B, C]``; ``final_observation`` (obs dict of all B envs, valid where
    ``final_mask``), ``final_mask`` bool ``[B]`` (envs whose episode ended inside this chunk);
    ``episode``: dict of float32 ``[B]`` metrics (success_once, success_at_end, return, episode_len,
    reward) valid where ``final_mask``.
    """

    obs: Obs
    rewards: torch.Tensor
    terminations: torch.Tensor
    truncations: torch.Tensor
    infos: dict[str, Any] = field(default_factory=dict)


class VecEnv(ABC):
    """B environments stepped together, one chunk of actions at a time (gymnasium conventions)."""

    num_envs: int
    action_dim: int
    obs_spec: ObsSpec

    @abstractmethod
    def reset(self, seed: int | None = None, reset_state_ids: torch.Tensor | None = None) -> tuple[Obs, dict]:
        """Reset every env. ``reset_state_ids`` int64 ``[B]`` picks the initial state per env (GRPO groups
        share one id); None draws them from the seeded generator."""

    @abstractmethod
    def chunk_step(self, actions: torch.Tensor) -> ChunkStepResult:
        """Run a whole chunk ``actions`` float32 ``[B, C, action_dim]``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release simulator resources."""

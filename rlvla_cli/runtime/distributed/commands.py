"""Commands only node drivers act on (``drivers_only``; plain trainer followers skip them, trainer_group.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SyncWeights:
    """Receive trainer rank 0's weights into this node's rollout copies; they become ``version``."""

    version: int
    drivers_only = True


@dataclass(frozen=True)
class Collect:
    """Run this step's rollout epochs on this node's envs and send the batch to trainer rank 0."""

    global_step: int
    drivers_only = True

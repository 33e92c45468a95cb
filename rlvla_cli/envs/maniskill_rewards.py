"""Reward modes of the ManiSkill adapter (pure functions of ManiSkill's step outputs).

- ``sparse``: 1 on the steps where ``info["success"]``.
- ``dense`` / ``normalized_dense``: ManiSkill's own reward (the env is made with that reward mode).
- ``grasp_shaping``: RLinf's pick-and-place shaping (its ManiSkill env wrapper): 0.1 while the source object
  is grasped, another 0.1 while the grasp has lasted more than one step, and 1.0 on success with the object
  grasped (or success alone when the task reports no grasp). Combine with ``use_rel_reward`` as RLinf does.
"""

from __future__ import annotations

import torch

GRASP_KEYS = ("is_src_obj_grasped", "is_grasped")


def _as_bool(value, batch: int) -> torch.Tensor:
    return torch.as_tensor(value).reshape(batch).bool()


def grasped_from_info(info: dict, batch: int) -> torch.Tensor | None:
    """The grasp flag ``[B]`` under the first of RLinf's / ManiSkill's key names, or None when absent."""
    for key in GRASP_KEYS:
        if key in info:
            return _as_bool(info[key], batch)
    return None


def grasp_shaping_reward(
    success: torch.Tensor, grasped: torch.Tensor | None, prev_grasped: torch.Tensor, consecutive: torch.Tensor | None
) -> torch.Tensor:
    """RLinf's shaping ``[B]`` from bool ``[B]`` flags.

    consecutive: the task's own ``consecutive_grasp`` flag when it reports one, else ``grasped & prev_grasped``.
    """
    if grasped is None:
        return success.float()
    consecutive = grasped & prev_grasped if consecutive is None else consecutive
    return 0.1 * grasped.float() + 0.1 * consecutive.float() + 1.0 * (success & grasped).float()


def step_reward(mode: str, env_reward, info: dict, prev_grasped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reward ``[B]`` of one step in ``mode`` and the grasp flag ``[B]`` to pass as the next ``prev_grasped``."""
    batch = prev_grasped.shape[0]
    success = _as_bool(info.get("success", torch.zeros(batch)), batch)
    grasped = grasped_from_info(info, batch)
    next_grasped = grasped if grasped is not None else torch.zeros(batch, dtype=torch.bool)
    if mode == "sparse":
        return success.float(), next_grasped
    if mode in ("dense", "normalized_dense"):
        return torch.as_tensor(env_reward, dtype=torch.float32).reshape(batch), next_grasped
    if mode == "grasp_shaping":
        consecutive = _as_bool(info["consecutive_grasp"], batch) if "consecutive_grasp" in info else None
        return grasp_shaping_reward(success, grasped, prev_grasped, consecutive), next_grasped
    raise ValueError(f"unknown ManiSkill reward mode {mode!r}")


def maniskill_reward_mode(mode: str) -> str:
    """The ``reward_mode`` passed to ``gym.make`` for an adapter reward mode."""
    return mode if mode in ("dense", "normalized_dense") else "sparse"

"""The built-in tabletop task: move the gripper to the object the instruction names and close it there.

Every episode places ``num_objects`` squares of distinct colours on a ``[-1, 1]^2`` table and names one of them
("pick up the red block", ...), so a policy needs both the image and the instruction: one that ignores the
instruction succeeds about ``1 / num_objects`` of the time. Actions are 7-D like a real arm (ee delta
xyz / rpy + gripper): x and y move the gripper by up to ``max_delta`` per step, dims 2-5 are ignored, and
dim 6 < 0 closes the gripper (ManiSkill's convention: -1 closes, +1 opens). Success: gripper closed within
``success_radius`` of the target (terminates). Reward: ``success_reward`` on success, plus, with
``shaping``, ``shaping_coef * (previous distance - distance)``.

Observation: ``main_images`` uint8 ``[B, H, W, 3]`` (top-down), ``states`` float32 ``[B, 3]`` (gripper x,
y and closed flag), ``task_descriptions``. Everything is batched torch; resets draw layouts from a
generator seeded by the reset state id, so a state id always gives the same scene.
"""

from __future__ import annotations

import numpy as np
import torch

from rlvla_cli.config.builtin_vocab import PALETTE, PHRASINGS
from rlvla_cli.config.env import BuiltinInitParams
from rlvla_cli.envs.base import Obs, ObsSpec
from rlvla_cli.envs.builtin_render import TabletopRenderer
from rlvla_cli.envs.episode import EpisodeSettings, EpisodeVecEnv, SimStep

OBJECT_RANGE = 0.78  # objects stay inside the table border
MIN_OBJECT_GAP = 0.45  # centres apart so the named object is unambiguous
STATE_DIM = 3


def sample_layout(
    state_id: int, num_objects: int, success_radius: float, split: str = "all",
    ood_colours: tuple[int, ...] = (), ood_phrasings: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """The scene of one reset state id: object positions ``[K, 2]``, palette indices ``[K]``, target index,
    gripper start ``[2]``, phrasing index. Pure function of its arguments.

    split ``all``: any colours and phrasing; ``in_distribution``: no object coloured ``ood_colours`` (palette
    indices), no phrasing in ``ood_phrasings``; ``ood``: the named object has a colour from ``ood_colours`` and the
    instruction a phrasing from ``ood_phrasings`` (the other objects any colour)."""
    rng = np.random.default_rng(int(state_id))
    target = None
    if split == "all":
        colours = rng.choice(len(PALETTE), size=num_objects, replace=False)
    elif split == "in_distribution":
        pool = [i for i in range(len(PALETTE)) if i not in ood_colours]
        colours = rng.choice(pool, size=num_objects, replace=False)
    else:
        named = int(rng.choice(list(ood_colours)))
        others = rng.choice([i for i in range(len(PALETTE)) if i != named], size=num_objects - 1, replace=False)
        target = int(rng.integers(num_objects))
        colours = np.insert(others, target, named)
    positions: list[np.ndarray] = []
    while len(positions) < num_objects:
        candidate = rng.uniform(-OBJECT_RANGE, OBJECT_RANGE, size=2)
        if all(np.linalg.norm(candidate - p) >= MIN_OBJECT_GAP for p in positions):
            positions.append(candidate)
    objects = np.stack(positions)
    if target is None:
        target = int(rng.integers(num_objects))
    while True:  # the gripper starts clearly away from the target
        gripper = rng.uniform(-0.9, 0.9, size=2)
        if np.linalg.norm(gripper - objects[target]) > 2.5 * success_radius:
            break
    if split == "all":
        phrasing = int(rng.integers(len(PHRASINGS)))
    else:
        allowed = [i for i in range(len(PHRASINGS)) if (i in ood_phrasings) == (split == "ood")]
        phrasing = int(rng.choice(allowed))
    return {
        "objects": objects.astype(np.float32),
        "colours": np.asarray(colours).astype(np.int64),
        "target": target,
        "gripper": gripper.astype(np.float32),
        "phrasing": phrasing,
    }


def instruction_for(colour_index: int, phrasing_index: int) -> str:
    """The instruction naming palette colour ``colour_index`` with phrasing ``phrasing_index``."""
    return PHRASINGS[phrasing_index].format(c=PALETTE[colour_index][0])


class BuiltinTabletopEnv(EpisodeVecEnv):
    """B tabletop scenes stepped together in torch (see the module docstring)."""

    def __init__(self, num_envs: int, params: BuiltinInitParams, settings: EpisodeSettings):
        spec = ObsSpec(image_shape=(params.image_size, params.image_size, 3), state_dim=STATE_DIM)
        super().__init__(num_envs, action_dim=7, obs_spec=spec, settings=settings)
        self.params = params
        self.renderer = TabletopRenderer(params.image_size)
        k = params.num_objects
        self.object_xy = torch.zeros(num_envs, k, 2)
        self.object_colour = torch.zeros(num_envs, k, dtype=torch.int64)
        self.target = torch.zeros(num_envs, dtype=torch.int64)
        self.gripper_xy = torch.zeros(num_envs, 2)
        self.closed = torch.zeros(num_envs, dtype=torch.bool)
        self.instructions = [""] * num_envs
        self.ood_colours = tuple(i for i, (name, _) in enumerate(PALETTE) if name in params.ood_colours)

    def target_xy(self) -> torch.Tensor:
        """Position ``[B, 2]`` of each env's named object."""
        return self.object_xy[torch.arange(self.num_envs), self.target]

    def _sim_reset(self, env_ids: torch.Tensor, state_ids: torch.Tensor) -> None:
        p = self.params
        for env_id, state_id in zip(env_ids.tolist(), state_ids.tolist(), strict=True):
            layout = sample_layout(state_id, p.num_objects, p.success_radius, p.split, self.ood_colours,
                                   tuple(p.ood_phrasings))
            self.object_xy[env_id] = torch.from_numpy(layout["objects"])
            self.object_colour[env_id] = torch.from_numpy(layout["colours"])
            self.target[env_id] = layout["target"]
            self.gripper_xy[env_id] = torch.from_numpy(layout["gripper"])
            self.closed[env_id] = False
            self.instructions[env_id] = instruction_for(int(layout["colours"][layout["target"]]), layout["phrasing"])

    def _sim_step(self, actions: torch.Tensor, active: torch.Tensor) -> SimStep:
        p = self.params
        before = torch.linalg.vector_norm(self.gripper_xy - self.target_xy(), dim=-1)
        move = actions[:, :2].clamp(-1.0, 1.0) * p.max_delta
        moved = (self.gripper_xy + move).clamp(-1.0, 1.0)
        self.gripper_xy = torch.where(active.unsqueeze(-1), moved, self.gripper_xy)
        self.closed = torch.where(active, actions[:, 6] < 0.0, self.closed)
        after = torch.linalg.vector_norm(self.gripper_xy - self.target_xy(), dim=-1)
        near = after < p.success_radius
        success = near & self.closed if p.require_grasp else near
        reward = success.float() * p.success_reward
        if p.shaping:
            reward = reward + p.shaping_coef * (before - after)
        return SimStep(reward=reward, terminated=success, success=success)

    def _sim_obs(self) -> Obs:
        images = self.renderer.render(self.object_xy, self.object_colour, self.gripper_xy, self.closed)
        states = torch.cat([self.gripper_xy, self.closed.float().unsqueeze(-1)], dim=-1)
        return {"main_images": images, "states": states, "task_descriptions": list(self.instructions)}

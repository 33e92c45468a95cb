"""The built-in tabletop task: it needs the instruction, an oracle solves it, it is fast and deterministic."""

from __future__ import annotations

import torch

from rlvla_cli.config.env import BuiltinInitParams
from rlvla_cli.envs.builtin import PHRASINGS, BuiltinTabletopEnv, instruction_for, sample_layout
from rlvla_cli.envs.builtin_render import PALETTE
from rlvla_cli.envs.episode import EpisodeSettings


def make_env(num_envs: int = 64, **params) -> BuiltinTabletopEnv:
    return BuiltinTabletopEnv(num_envs, BuiltinInitParams(**params), EpisodeSettings(max_episode_steps=30, seed=1))


def greedy_actions(env: BuiltinTabletopEnv, goal_xy: torch.Tensor) -> torch.Tensor:
    """One step towards ``goal_xy`` [B, 2], gripper closed: [B, 1, 7]."""
    actions = torch.zeros(env.num_envs, 1, 7)
    actions[:, 0, :2] = ((goal_xy - env.gripper_xy) / env.params.max_delta).clamp(-1, 1)
    actions[:, 0, 6] = -1.0
    return actions


def success_rate(env: BuiltinTabletopEnv, use_instruction: bool, steps: int = 240) -> tuple[float, float]:
    env.reset(seed=2)
    successes, lengths = [], []
    for _ in range(steps):
        goal = env.target_xy() if use_instruction else env.object_xy[:, 0]  # first object ignores the instruction
        result = env.chunk_step(greedy_actions(env, goal))
        mask = result.infos["final_mask"]
        if mask.any():
            successes.append(result.infos["episode"]["success_once"][mask])
            lengths.append(result.infos["episode"]["episode_len"][mask])
    return torch.cat(successes).mean().item(), torch.cat(lengths).mean().item()


def test_oracle_with_instruction_always_succeeds_in_a_few_steps():
    rate, length = success_rate(make_env(), use_instruction=True)
    assert rate == 1.0
    assert 2.0 <= length <= 10.0


def test_ignoring_the_instruction_succeeds_about_one_in_num_objects():
    rate, _ = success_rate(make_env(), use_instruction=False)
    assert 0.2 < rate < 0.5  # 1/3 in expectation


def test_success_needs_the_gripper_closed_and_shaping_rewards_progress():
    env = make_env(8)
    env.reset(seed=4)
    actions = greedy_actions(env, env.target_xy())
    actions[:, 0, 6] = 1.0  # open: move only
    before = torch.linalg.vector_norm(env.gripper_xy - env.target_xy(), dim=-1)
    result = env.chunk_step(actions)
    after = torch.linalg.vector_norm(env.gripper_xy - env.target_xy(), dim=-1)
    assert not result.infos["success"].any()
    assert torch.allclose(result.rewards[:, 0], before - after, atol=1e-6)


def test_layout_is_a_pure_function_of_the_state_id():
    a, b = sample_layout(123, 3, 0.12), sample_layout(123, 3, 0.12)
    assert all((a[k] == b[k]).all() if hasattr(a[k], "all") else a[k] == b[k] for k in a)
    assert len(set(a["colours"].tolist())) == 3
    texts = {instruction_for(0, p) for p in range(len(PHRASINGS))}
    assert len(texts) == len(PHRASINGS) and all(PALETTE[0][0] in t for t in texts)


def test_image_shows_the_target_colour_at_its_position():
    env = make_env(4, image_size=96)
    obs, _ = env.reset(seed=9)
    assert obs["main_images"].shape == (4, 96, 96, 3)
    for b in range(4):
        x, y = env.target_xy()[b].tolist()
        col, row = int((x + 1) / 2 * 96), int((1 - y) / 2 * 96)
        colour = PALETTE[int(env.object_colour[b, env.target[b]])][1]
        patch = obs["main_images"][b, row - 2 : row + 3, col - 2 : col + 3].reshape(-1, 3)
        gripper_px = ((env.gripper_xy[b] - env.target_xy()[b]).abs() < 0.2).all()
        assert gripper_px or (patch == torch.tensor(colour, dtype=torch.uint8)).all(dim=-1).any()
        assert colour[0] != 0 and PALETTE[int(env.object_colour[b, env.target[b]])][0] in obs["task_descriptions"][b]


def test_gripper_cross_is_drawn_where_the_state_says():
    env = make_env(32)
    obs, _ = env.reset(seed=5)
    white = (obs["main_images"] == 255).all(-1)  # the open gripper is the only white thing
    rows, cols = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    count = white.sum((1, 2)).clamp(min=1)
    x = ((white * cols).sum((1, 2)) / count + 0.5) / 64 * 2 - 1
    y = 1 - ((white * rows).sum((1, 2)) / count + 0.5) / 64 * 2
    visible = (env.gripper_xy.abs() < 0.75).all(-1)  # crosses clipped by the border are off-centre
    assert torch.allclose(torch.stack([x, y], -1)[visible], env.gripper_xy[visible], atol=0.04)
    assert torch.allclose(obs["states"][:, :2], env.gripper_xy)

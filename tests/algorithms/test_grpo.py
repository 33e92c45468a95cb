"""GRPO group-relative advantages: hand-computed groups, size-1 and all-equal groups, filtering, batch path."""

from __future__ import annotations

import math

import pytest
import torch

from rlvla_cli.algorithms import RolloutBatch, compute_advantages, group_filter_mask, group_relative_advantages
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.errors import UserError


def test_hand_computed_groups():
    # group 0: scores [1, 0, 0, 1]: mean 0.5, sample std sqrt((4 * 0.25) / 3) = sqrt(1/3) = 0.57735
    #          A = +-0.5 / (0.57735 + 1e-6) = +-0.866024
    # group 1: scores [1, 1, 1, 0]: mean 0.75, std sqrt((3 * 0.0625 + 0.5625) / 3) = 0.5
    #          A = 0.25 / 0.500001 = 0.4999990, -0.75 / 0.500001 = -1.4999970
    adv = group_relative_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]), 4)
    s = math.sqrt(1 / 3) + 1e-6
    expected = [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s] + [0.25 / 0.500001] * 3 + [-0.75 / 0.500001]
    assert adv.tolist() == pytest.approx(expected, rel=1e-6)


def test_all_equal_and_size_one_groups_get_zero_without_nan():
    adv = group_relative_advantages(torch.tensor([0.1] * 7 + [0.3, 0.7]), 1)
    assert adv.tolist() == [0.0] * 9
    # float32 rounding of 0.1 * 7 / 7 must not turn into a large advantage
    adv = group_relative_advantages(torch.tensor([0.1] * 7 + [1.0] * 7), 7)
    assert adv.tolist() == [0.0] * 14


def test_groups_must_divide_the_envs():
    with pytest.raises(UserError, match="group_size"):
        group_relative_advantages(torch.zeros(6), 4)


def test_filter_keeps_groups_with_mean_inside_bounds():
    scores = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])  # group means 0, 0.5, 1 (groups of 2)
    keep = group_filter_mask(scores, 2, 0.1, 0.9)
    assert keep.tolist() == [False, False, True, True, False, False]


def _grpo_batch(rewards: torch.Tensor, dones_at: list[int]) -> RolloutBatch:
    t, b, c = rewards.shape
    terms = torch.zeros(t, b, c, dtype=torch.bool)
    mask = torch.ones(t, b, dtype=torch.bool)
    for env, step in enumerate(dones_at):
        terms[step, env, -1] = True
        mask[step + 1 :, env] = False
    return RolloutBatch(
        forward_inputs={}, old_logprobs=torch.zeros(t, b, c, 1), rewards=rewards,
        terminations=terms, truncations=torch.zeros_like(terms), loss_mask=mask,
    )  # fmt: skip


def test_batch_scores_are_masked_returns_broadcast_to_every_step():
    # 4 envs, groups of 2, T = 3, C = 2. Env 0 ends at step 0 with reward 1; its later (masked) reward 5
    # does not count. Scores: env0 1, env1 0 | env2 1, env3 1 (equal group -> 0).
    rewards = torch.zeros(3, 4, 2)
    rewards[0, 0, 1] = 1.0
    rewards[2, 0, 0] = 5.0
    rewards[1, 2, 0] = 1.0
    rewards[2, 3, 1] = 1.0
    batch = _grpo_batch(rewards, dones_at=[0, 2, 1, 2])
    cfg = AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=2, normalize_advantages=False)
    adv, ret = compute_advantages(batch, cfg)
    a = 0.5 / (math.sqrt(0.5) + 1e-6)  # group [1, 0]: mean 0.5, sample std sqrt(0.5)
    assert adv.shape == (3, 4)
    assert adv[0].tolist() == pytest.approx([a, -a, 0.0, 0.0])
    assert (adv == adv[0]).all()
    assert ret[0].tolist() == [1.0, 0.0, 1.0, 1.0]

    action_cfg = cfg.model_copy(update={"reward_type": "action_level"})
    adv, _ = compute_advantages(_grpo_batch(rewards, dones_at=[0, 2, 1, 2]), action_cfg)
    assert adv.shape == (3, 4, 2) and adv[1, 1, 0] == pytest.approx(-a)


def test_batch_filtering_clears_the_loss_mask_of_dropped_groups():
    rewards = torch.zeros(1, 4, 1)
    rewards[0, 0, 0] = 1.0  # group 0 mean 0.5 (kept), group 1 mean 0 (all fail, dropped)
    batch = _grpo_batch(rewards, dones_at=[0, 0, 0, 0])
    cfg = AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=2, filter_rewards=True)
    compute_advantages(batch, cfg)
    assert batch.loss_mask.tolist() == [[True, True, False, False]]
    # normalisation over the kept entries: +-1 / (1 + 1e-8)
    assert batch.advantages[0].tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0], rel=1e-6)

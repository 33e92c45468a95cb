"""GAE: hand-computed cases (arithmetic in comments), loop vs vectorised, levels, masks and normalisation."""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.algorithms import (
    RolloutBatch,
    compute_advantages,
    flatten_action_steps,
    generalized_advantage_estimate,
    mask_after_first_done,
    normalize_advantages,
    unflatten_action_steps,
)
from rlvla_cli.config.algorithm import AlgorithmConfig


def reference_gae(rewards, values, last_value, terms, truncs, boots, gamma, lam):
    """The GAE recursion written out for one env with Python floats (the spec the library must match).

    delta_t = r_t + gamma * [(1 - done_t) V_{t+1} + trunc_t (1 - term_t) V(final_t)] - V_t
    A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
    """
    num_steps = len(rewards)
    advantages = [0.0] * num_steps
    following = 0.0
    for t in reversed(range(num_steps)):
        next_v = values[t + 1] if t + 1 < num_steps else last_value
        done = terms[t] or truncs[t]
        bootstrap = boots[t] if (truncs[t] and not terms[t]) else 0.0
        delta = rewards[t] + gamma * ((0.0 if done else next_v) + bootstrap) - values[t]
        following = delta + gamma * lam * (0.0 if done else 1.0) * following
        advantages[t] = following
    return advantages


def _gae(rewards, values, last, terms, truncs, boots=None, gamma=0.9, lam=0.8):
    col = lambda xs, dtype=torch.float64: torch.tensor(xs, dtype=dtype).unsqueeze(1)  # noqa: E731  [T] -> [T, 1]
    boot = None if boots is None else col(boots)
    adv, ret = generalized_advantage_estimate(
        col(rewards), col(values), torch.tensor([last], dtype=torch.float64),
        col(terms, torch.bool), col(truncs, torch.bool), boot, gamma, lam,
    )  # fmt: skip
    return adv[:, 0].tolist(), ret[:, 0].tolist()


REWARDS, VALUES = [1.0, 0.0, 2.0], [0.5, 1.0, 1.5]


def test_terminal_episode_does_not_bootstrap():
    # gamma 0.9, lambda 0.8 -> gamma*lambda = 0.72; terminated after step 2, so V(next) counts 0.
    # delta_2 = 2 + 0            - 1.5 = 0.5    A_2 = 0.5
    # delta_1 = 0 + 0.9 * 1.5    - 1.0 = 0.35   A_1 = 0.35 + 0.72 * 0.5  = 0.71
    # delta_0 = 1 + 0.9 * 1.0    - 0.5 = 1.4    A_0 = 1.4  + 0.72 * 0.71 = 1.9112
    adv, ret = _gae(REWARDS, VALUES, 3.0, [0, 0, 1], [0, 0, 0], [0, 0, 9.0])
    assert adv == pytest.approx([1.9112, 0.71, 0.5])
    assert ret == pytest.approx([2.4112, 1.71, 2.0])  # A + V


def test_truncated_episode_bootstraps_from_final_observation():
    # truncated after step 2 with V(final obs) = 2.0 (the last_value 3.0 belongs to the next episode):
    # delta_2 = 2 + 0.9 * 2.0 - 1.5 = 2.3       A_2 = 2.3
    # delta_1 = 0.35                            A_1 = 0.35 + 0.72 * 2.3   = 2.006
    # delta_0 = 1.4                             A_0 = 1.4  + 0.72 * 2.006 = 2.84432
    adv, _ = _gae(REWARDS, VALUES, 3.0, [0, 0, 0], [0, 0, 1], [0, 0, 2.0])
    assert adv == pytest.approx([2.84432, 2.006, 2.3])


def test_termination_wins_over_truncation_in_the_same_step():
    adv, _ = _gae(REWARDS, VALUES, 3.0, [0, 0, 1], [0, 0, 1], [0, 0, 2.0])
    assert adv == pytest.approx([1.9112, 0.71, 0.5])


def test_unfinished_episode_bootstraps_from_last_value():
    # no done: step 2 bootstraps from last_value 3.0
    # delta_2 = 2 + 0.9 * 3.0 - 1.5 = 3.2       A_2 = 3.2
    # A_1 = 0.35 + 0.72 * 3.2 = 2.654           A_0 = 1.4 + 0.72 * 2.654 = 3.31088
    adv, _ = _gae(REWARDS, VALUES, 3.0, [0, 0, 0], [0, 0, 0])
    assert adv == pytest.approx([3.31088, 2.654, 3.2])


def test_auto_reset_cuts_the_recursion_at_a_done():
    # gamma 0.5, lambda 1; terminated after step 1, step 2 starts a new episode; last value 5.
    # delta_3 = 1 + 0.5 * 5 - 4 = -0.5          A_3 = -0.5
    # delta_2 = 0 + 0.5 * 4 - 3 = -1           A_2 = -1 + 0.5 * -0.5 = -1.25
    # delta_1 = 1 + 0       - 2 = -1  (term)    A_1 = -1   (nothing flows across the done)
    # delta_0 = 1 + 0.5 * 2 - 1 = 1             A_0 = 1 + 0.5 * -1 = 0.5
    adv, _ = _gae([1, 1, 0, 1], [1, 2, 3, 4], 5.0, [0, 1, 0, 0], [0, 0, 0, 0], gamma=0.5, lam=1.0)
    assert adv == pytest.approx([0.5, -1.0, -1.25, -0.5])


def test_five_steps_lambda_zero_is_one_step_td():
    # lambda 0 -> A_t = delta_t; gamma 1: delta = r + V_{t+1} - V_t with V = [0, 1, 2, 3, 4], last 10
    # deltas: 1+1-0 = 2, 1+2-1 = 2, 1+3-2 = 2, 1+4-3 = 2, 1+10-4 = 7
    adv, _ = _gae([1] * 5, [0, 1, 2, 3, 4], 10.0, [0] * 5, [0] * 5, gamma=1.0, lam=0.0)
    assert adv == pytest.approx([2, 2, 2, 2, 7])


@pytest.mark.parametrize("gamma", [0.0, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
@pytest.mark.parametrize("num_steps,num_envs", [(1, 1), (5, 3), (17, 8)])
def test_vectorised_matches_loop(gamma, lam, num_steps, num_envs):
    gen = torch.Generator().manual_seed(num_steps * 100 + num_envs)
    rewards = torch.randn(num_steps, num_envs, generator=gen, dtype=torch.float64)
    values = torch.randn(num_steps, num_envs, generator=gen, dtype=torch.float64)
    last = torch.randn(num_envs, generator=gen, dtype=torch.float64)
    terms = torch.rand(num_steps, num_envs, generator=gen) < 0.15
    truncs = torch.rand(num_steps, num_envs, generator=gen) < 0.15
    boots = torch.randn(num_steps, num_envs, generator=gen, dtype=torch.float64)
    adv, ret = generalized_advantage_estimate(rewards, values, last, terms, truncs, boots, gamma, lam)
    for b in range(num_envs):
        expected = reference_gae(
            rewards[:, b].tolist(), values[:, b].tolist(), float(last[b]),
            terms[:, b].tolist(), truncs[:, b].tolist(), boots[:, b].tolist(), gamma, lam,
        )  # fmt: skip
        assert adv[:, b].tolist() == pytest.approx(expected, abs=1e-10)
    torch.testing.assert_close(ret, adv + values)


def _batch(rewards, values, last, terms=None, truncs=None, boots=None, mask=None) -> RolloutBatch:
    t, b, c = rewards.shape
    terms = torch.zeros(t, b, c, dtype=torch.bool) if terms is None else terms
    truncs = torch.zeros(t, b, c, dtype=torch.bool) if truncs is None else truncs
    return RolloutBatch(
        forward_inputs={"x": torch.zeros(t, b, 2)},
        old_logprobs=torch.zeros(t, b, c, 3),
        rewards=rewards,
        terminations=terms,
        truncations=truncs,
        loss_mask=torch.ones(t, b, dtype=torch.bool) if mask is None else mask,
        old_values=values,
        bootstrap_values=boots,
        last_values=last,
    )


def test_chunk_level_sums_rewards_and_any_flags():
    # C = 2: chunk rewards 1+2 = 3 and 0.5+0.5 = 1; the second chunk terminates at its first action.
    rewards = torch.tensor([[[1.0, 2.0]], [[0.5, 0.5]]])
    terms = torch.tensor([[[False, False]], [[True, False]]])
    batch = _batch(rewards, torch.tensor([[[1.0]], [[2.0]]]), torch.tensor([[7.0]]), terms=terms)
    cfg = AlgorithmConfig(gamma=0.5, gae_lambda=1.0, normalize_advantages=False)
    adv, ret = compute_advantages(batch, cfg)
    # A_1 = 1 - 2 = -1 (terminal); A_0 = 3 + 0.5 * 2 - 1 + 0.5 * -1 = 2.5
    assert adv.shape == (2, 1)
    assert adv[:, 0].tolist() == pytest.approx([2.5, -1.0])
    assert ret[:, 0].tolist() == pytest.approx([3.5, 1.0])
    assert batch.advantages is adv and batch.returns is ret


def test_action_level_runs_over_every_action_in_time_order():
    # T=2 chunks of C=2 actions -> 4 action steps; per-action values (V = C); gamma 1, lambda 1.
    rewards = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    values = torch.tensor([[[0.1, 0.2]], [[0.3, 0.4]]])
    batch = _batch(rewards, values, torch.tensor([[5.0, 9.0]]))
    cfg = AlgorithmConfig(gamma=1.0, gae_lambda=1.0, reward_type="action_level", normalize_advantages=False)
    adv, ret = compute_advantages(batch, cfg)
    # lambda = 1, no done: A = (sum of later rewards + last value column 0 = 5) - V
    # sequence r = [1, 0, 0, 1], V = [.1, .2, .3, .4]: returns = [7, 6, 6, 6]
    assert adv.shape == (2, 1, 2)
    torch.testing.assert_close(ret[:, 0], torch.tensor([[7.0, 6.0], [6.0, 6.0]]))
    torch.testing.assert_close(adv[:, 0], torch.tensor([[6.9, 5.8], [5.7, 5.6]]))


def test_action_level_with_one_value_per_chunk_repeats_it_and_bootstraps_mid_chunk():
    # V = 1 per chunk repeated over its actions; truncation after action 0 of chunk 1 with V(final) = 4.
    rewards = torch.tensor([[[1.0, 1.0]], [[1.0, 1.0]]])
    truncs = torch.tensor([[[False, False]], [[True, False]]])
    boots = torch.tensor([[[0.0]], [[4.0]]])
    batch = _batch(rewards, torch.tensor([[[2.0]], [[3.0]]]), torch.tensor([[8.0]]), truncs=truncs, boots=boots)
    cfg = AlgorithmConfig(gamma=0.5, gae_lambda=0.0, reward_type="action_level", normalize_advantages=False)
    adv, _ = compute_advantages(batch, cfg)
    # lambda 0 -> A = delta. Action values [2, 2, 3, 3]:
    # a0: 1 + .5*2 - 2 = 0;  a1: 1 + .5*3 - 2 = 0.5;  a2 (truncated): 1 + .5*4 - 3 = 0;  a3: 1 + .5*8 - 3 = 2
    torch.testing.assert_close(adv[:, 0], torch.tensor([[0.0, 0.5], [0.0, 2.0]]))


def test_flatten_action_steps_roundtrip_and_order():
    x = torch.arange(2 * 3 * 4).reshape(2, 3, 4)  # [T=2, B=3, C=4]
    flat = flatten_action_steps(x)
    assert flat.shape == (8, 3)
    assert flat[:, 1].tolist() == [4, 5, 6, 7, 16, 17, 18, 19]  # env 1: chunk 0 actions, then chunk 1
    torch.testing.assert_close(unflatten_action_steps(flat, 4), x)


def test_mask_after_first_done_keeps_the_done_step():
    dones = torch.tensor([[0, 0], [1, 0], [0, 0], [1, 1]], dtype=torch.bool)
    assert mask_after_first_done(dones).tolist() == [[True, True], [True, True], [False, True], [False, True]]
    chunked = torch.zeros(3, 1, 2, dtype=torch.bool)
    chunked[0, 0, 1] = True  # done at the second action of the first chunk
    assert mask_after_first_done(chunked)[:, 0].tolist() == [True, False, False]


def test_normalisation_uses_masked_entries_only():
    adv = torch.tensor([[1.0, 100.0], [3.0, -50.0]])
    mask = torch.tensor([[True, False], [True, False]])
    out = normalize_advantages(adv, mask)
    # masked entries 1 and 3: mean 2, population std 1 -> -1, +1; the rest becomes 0
    torch.testing.assert_close(out, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), atol=1e-6, rtol=0)
    per_action = normalize_advantages(torch.tensor([[[1.0, 3.0]], [[7.0, 9.0]]]), torch.tensor([[True], [False]]))
    torch.testing.assert_close(per_action, torch.tensor([[[-1.0, 1.0]], [[0.0, 0.0]]]), atol=1e-6, rtol=0)


def test_gae_without_values_is_a_clear_error():
    batch = _batch(torch.zeros(2, 1, 1), None, None)
    with pytest.raises(ValueError, match="value head"):
        compute_advantages(batch, AlgorithmConfig())

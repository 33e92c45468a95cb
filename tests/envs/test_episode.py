"""Episode bookkeeping of EpisodeVecEnv: chunking, auto-reset, ignore_terminations, metrics, reset-state groups.

The simulator here is a scripted one (success exactly at step ``state_id % 7 + 1``, reward 1 per step), so
every flag and metric has a hand-computable value; the real adapters run the same code (test_contract.py).
"""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.envs.base import ObsSpec
from rlvla_cli.envs.episode import EpisodeSettings, EpisodeVecEnv, SimStep, reset_state_id


class ScriptedEnv(EpisodeVecEnv):
    """Env b succeeds at its step number ``state_id % 7 + 1``; reward 1 per active step; obs = step count."""

    num_reset_states = 1000

    def __init__(self, num_envs: int, **kwargs):
        super().__init__(num_envs, 7, ObsSpec((4, 4, 3), 1), EpisodeSettings(**kwargs))
        self.t = torch.zeros(num_envs, dtype=torch.int64)
        self.goal = torch.zeros(num_envs, dtype=torch.int64)
        self.steps_taken = torch.zeros(num_envs, dtype=torch.int64)

    def _sim_reset(self, env_ids, state_ids):
        self.t[env_ids] = 0
        self.goal[env_ids] = state_ids % 7 + 1

    def _sim_step(self, actions, active):
        self.t += active.long()
        self.steps_taken += active.long()
        return SimStep(reward=torch.ones(self.num_envs), terminated=self.t == self.goal, success=self.t == self.goal)

    def _sim_obs(self):
        images = torch.zeros(self.num_envs, 4, 4, 3, dtype=torch.uint8)
        return {"main_images": images, "states": self.t.float().unsqueeze(-1),
                "task_descriptions": [f"goal {int(g)}" for g in self.goal]}


def actions(batch: int, chunk: int) -> torch.Tensor:
    return torch.zeros(batch, chunk, 7)


def test_termination_inside_chunk_is_flagged_at_its_step_and_rest_of_chunk_skipped():
    env = ScriptedEnv(2, max_episode_steps=50)
    env.reset(reset_state_ids=torch.tensor([1, 4]))  # goals: step 2 and step 5
    result = env.chunk_step(actions(2, 4))
    assert result.terminations.tolist() == [[False, True, False, False], [False] * 4]
    assert result.rewards.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]  # env 0 skips steps 3-4 of the chunk
    assert result.infos["success"][0].tolist() == [False, True, False, False]
    assert result.infos["final_mask"].tolist() == [True, False]
    assert env.steps_taken.tolist() == [2, 4]
    episode = result.infos["episode"]
    assert episode["success_once"][0] == 1 and episode["return"][0] == 2 and episode["episode_len"][0] == 2
    assert episode["reward"][0] == 1.0 and episode["success_at_end"][0] == 1
    # auto-reset: env 0 starts a new episode (step count 0), its final observation shows step 2
    assert result.obs["states"][:, 0].tolist() == [0, 4]
    assert result.infos["final_observation"]["states"][0, 0] == 2


def test_truncation_at_max_episode_steps():
    env = ScriptedEnv(1, max_episode_steps=3)
    env.reset(reset_state_ids=torch.tensor([6]))  # goal at step 7, never reached
    result = env.chunk_step(actions(1, 5))
    assert result.truncations.tolist() == [[False, False, True, False, False]]
    assert not result.terminations.any()
    assert result.infos["episode"]["success_once"][0] == 0 and result.infos["episode"]["episode_len"][0] == 3


def test_ignore_terminations_runs_to_truncation_and_keeps_success_once():
    env = ScriptedEnv(1, max_episode_steps=6, ignore_terminations=True)
    env.reset(reset_state_ids=torch.tensor([1]))  # success exactly at step 2, then not any more
    first = env.chunk_step(actions(1, 4))
    assert not first.terminations.any() and not first.infos["final_mask"].any()
    assert first.infos["success"].tolist() == [[False, True, False, False]]
    second = env.chunk_step(actions(1, 4))
    assert second.truncations.tolist() == [[False, True, False, False]]
    episode = second.infos["episode"]
    assert episode["success_once"][0] == 1 and episode["success_at_end"][0] == 0 and episode["episode_len"][0] == 6


def test_without_auto_reset_ended_envs_stay_frozen_until_reset():
    env = ScriptedEnv(2, max_episode_steps=50, auto_reset=False)
    env.reset(reset_state_ids=torch.tensor([0, 6]))  # goals at steps 1 and 7
    env.chunk_step(actions(2, 3))
    later = env.chunk_step(actions(2, 3))
    assert later.rewards[0].tolist() == [0, 0, 0] and env.steps_taken[0] == 1
    assert later.infos["final_mask"].tolist() == [False, False]  # env 0's end was reported once, earlier
    assert later.obs["states"][0, 0] == 1  # frozen at its final state
    done = env.chunk_step(actions(2, 3))
    assert done.terminations[1].tolist() == [True, False, False] and done.infos["final_mask"].tolist() == [False, True]
    env.reset(reset_state_ids=torch.tensor([0, 6]))
    assert env.chunk_step(actions(2, 1)).terminations[0, 0]


def test_relative_reward_and_reward_coef():
    env = ScriptedEnv(1, max_episode_steps=50, use_rel_reward=True, reward_coef=2.0)
    env.reset(reset_state_ids=torch.tensor([6]))
    result = env.chunk_step(actions(1, 3))
    assert result.rewards.tolist() == [[2.0, 0.0, 0.0]]  # 2 - 0, then 2 - 2


def test_groups_share_reset_states_through_auto_resets():
    env = ScriptedEnv(8, max_episode_steps=4, group_size=4, seed=11)
    _, info = env.reset()
    ids = info["reset_state_ids"]
    assert torch.equal(ids[:4], ids[:1].expand(4)) and torch.equal(ids[4:], ids[4:5].expand(4))
    assert ids[0] != ids[4]
    for _ in range(6):  # every env resets at least once; groups stay aligned episode by episode
        env.chunk_step(actions(8, 3))
    counts = env._episode_count  # noqa: SLF001 - the k-th episode index is what groups share
    for env_id in range(8):
        group_first = (env_id // 4) * 4
        if counts[env_id] == counts[group_first]:
            assert env.state_ids[env_id] == env.state_ids[group_first]


def test_seeding_is_deterministic_and_fixed_ids_repeat():
    a, b = ScriptedEnv(4, max_episode_steps=5, seed=3), ScriptedEnv(4, max_episode_steps=5, seed=3)
    assert torch.equal(a.reset()[1]["reset_state_ids"], b.reset()[1]["reset_state_ids"])
    assert torch.equal(a.reset(seed=3)[1]["reset_state_ids"], b.reset(seed=3)[1]["reset_state_ids"])
    first, second = a.reset(seed=9)[1]["reset_state_ids"], a.reset()[1]["reset_state_ids"]
    assert not torch.equal(first, second)  # a new rollout draws new states
    fixed = ScriptedEnv(4, max_episode_steps=5, seed=3, use_fixed_reset_state_ids=True)
    assert torch.equal(fixed.reset()[1]["reset_state_ids"], fixed.reset()[1]["reset_state_ids"])
    assert fixed.reset()[1]["reset_state_ids"].tolist() == [3, 4, 5, 6]  # enumerated in order from the seed


@pytest.mark.parametrize("fixed", [False, True])
def test_env_offset_makes_worker_slices_match_one_big_batch(fixed):
    def run(env):
        ids = [env.reset()[1]["reset_state_ids"]]
        for _ in range(3):  # auto-resets: the second and third episodes must line up too
            env.chunk_step(actions(env.num_envs, 5))
            ids.append(env.state_ids.clone())
        return torch.stack(ids)

    kwargs = dict(max_episode_steps=5, group_size=2, seed=5, use_fixed_reset_state_ids=fixed)
    whole = run(ScriptedEnv(8, **kwargs))
    lower = run(ScriptedEnv(4, env_offset=0, total_envs=8, **kwargs))
    upper = run(ScriptedEnv(4, env_offset=4, total_envs=8, **kwargs))
    assert torch.equal(whole, torch.cat([lower, upper], dim=1))


def test_reset_state_id_is_in_range():
    values = {reset_state_id(0, r, g, 0, 10, False, 4) for r in range(20) for g in range(4)}
    assert values <= set(range(10)) and len(values) > 5


def test_bad_shapes_raise():
    env = ScriptedEnv(2, max_episode_steps=5)
    env.reset()
    with pytest.raises(ValueError):
        env.chunk_step(torch.zeros(3, 1, 7))
    with pytest.raises(ValueError):
        env.reset(reset_state_ids=torch.tensor([1]))

"""MetaWorld MT50 adapter: RLinf's task list and instructions, reset ids -> (task, trial), determinism of a trial,
an episode of every MT50 task, and MetaWorld's own success ending an episode (its scripted expert policy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlvla_cli.config.env import MetaWorldEnvConfig
from rlvla_cli.errors import UserError

metaworld = pytest.importorskip("metaworld", reason="metaworld (the `metaworld` extra) is not installed")

from rlvla_cli.envs import metaworld as adapter  # noqa: E402
from rlvla_cli.envs.metaworld_tasks import MT50_INSTRUCTIONS, MT50_TASKS  # noqa: E402
from rlvla_cli.envs.registry import build_env  # noqa: E402


def _env(num_envs=1, max_steps=3, **params):
    params = {"camera_height": 32, "camera_width": 32, **params}
    cfg = MetaWorldEnvConfig(total_num_envs=num_envs, max_episode_steps=max_steps, init_params=params)
    return build_env(cfg, seed=0)


def test_mt50_task_list_matches_metaworld_and_rlinf():
    assert len(MT50_TASKS) == 50 and set(MT50_TASKS) == set(metaworld.env_dict.MT50_V3)
    assert MT50_TASKS[0] == "assembly-v3" and MT50_INSTRUCTIONS["reach-v3"] == "Reach a goal position"
    assert adapter.state_id_to_trial(0, 50, 10) == (0, 0) and adapter.state_id_to_trial(315, 50, 10) == (31, 5)
    assert adapter.state_id_to_trial(500, 50, 10) == (0, 0)
    with pytest.raises(UserError, match="task_ids"):
        adapter.select_tasks([50])


def test_same_trial_same_start_and_expert_succeeds():
    """reach-v3 (task 31) trial 2 twice gives the same state; MetaWorld's scripted policy reaches the goal and the
    env's own success terminates the episode with reward 1."""
    from metaworld.policies import SawyerReachV3Policy

    env = _env(max_steps=150, task_ids=[31])
    try:
        first, _ = env.reset(reset_state_ids=torch.tensor([2]))
        inner, policy = env.slots[0], SawyerReachV3Policy()
        goal_before = inner._target_pos.copy()
        again, _ = env.reset(reset_state_ids=torch.tensor([2]))
        assert torch.equal(first["main_images"], again["main_images"]) and torch.equal(first["states"], again["states"])
        env.reset(reset_state_ids=torch.tensor([3]))
        assert not np.allclose(inner._target_pos, goal_before)  # another trial, another goal
        assert first["task_descriptions"] == ["Reach a goal position"]
        env.reset(reset_state_ids=torch.tensor([2]))
        assert np.allclose(inner._target_pos, goal_before)  # trial 2's goal again
        ended = None
        for _ in range(150):
            obs = inner._get_obs()
            result = env.chunk_step(torch.from_numpy(policy.get_action(obs)).float().view(1, 1, 4))
            if result.infos["final_mask"].any():
                ended = result
                break
        assert ended is not None and ended.terminations.any() and ended.infos["episode"]["success_once"].item() == 1
        assert ended.rewards.sum().item() == 1.0
    finally:
        env.close()


@pytest.mark.slow
def test_an_episode_of_every_mt50_task():
    env = _env(max_steps=2, num_steps_wait=1, trials_per_task=2)
    try:
        for task in range(50):
            obs, _ = env.reset(reset_state_ids=torch.tensor([task * 2 + 1]))
            assert obs["task_descriptions"] == [MT50_INSTRUCTIONS[MT50_TASKS[task]]]
            assert obs["main_images"].shape == (1, 32, 32, 3) and obs["main_images"].float().std() > 1
            result = env.chunk_step(torch.zeros(1, 2, 4))
            assert result.truncations[0, -1] and result.infos["episode"]["episode_len"].item() == 2
    finally:
        env.close()


def test_calvin_is_refused_with_what_it_needs(tmp_path):
    """env_type calvin: one paragraph naming the key, why (not on PyPI) and what to use; exit code 2."""
    import subprocess
    import sys

    config = tmp_path / "calvin.yaml"
    config.write_text("env:\n  train:\n    env_type: calvin\n")
    run = subprocess.run([sys.executable, "-m", "rlvla_cli", "config", "validate", str(config)], capture_output=True,
                         text=True, timeout=120)
    text = run.stdout + run.stderr
    assert run.returncode == 2 and "`env.train`" in text and "does not install from PyPI" in text
    assert "Traceback" not in text

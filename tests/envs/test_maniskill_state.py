"""ManiSkill ``obs_mode: state`` on PushCube-v1 (real CPU physics): ``states`` is ManiSkill's own flattened
state vector, ``main_images`` is empty, the env-worker channels carry it, and the image-free small policy acts
on it."""

from __future__ import annotations

import pytest
import torch
from test_contract import check_obs, check_result

from rlvla_cli.config.env import ManiSkillEnvConfig
from rlvla_cli.config.model import SmallModelConfig
from rlvla_cli.envs.maniskill import make_maniskill_env
from rlvla_cli.envs.registry import build_env
from rlvla_cli.envs.workers.pool import EnvWorkerPool
from rlvla_cli.errors import UserError
from rlvla_cli.models.registry import build_policy

PUSHCUBE_STATE_DIM = 35  # qpos 9 + qvel 9 + tcp pose 7 + goal position 3 + cube pose 7


def _cfg(num_envs: int = 2) -> ManiSkillEnvConfig:
    return ManiSkillEnvConfig(
        total_num_envs=num_envs, max_episode_steps=4, max_steps_per_rollout_epoch=4, ignore_terminations=True,
        init_params={"id": "PushCube-v1", "obs_mode": "state", "control_mode": "pd_ee_delta_pos",
                     "reward_mode": "normalized_dense"},
    )


@pytest.fixture(scope="module")
def env():
    vec_env = build_env(_cfg(), seed=7)
    yield vec_env
    vec_env.close()


def test_state_obs_is_maniskills_flat_vector(env):
    obs, info = env.reset(reset_state_ids=torch.tensor([11, 12]))
    check_obs(env, obs)
    assert env.obs_spec.image_shape == (0, 0, 3) and env.obs_spec.state_dim == PUSHCUBE_STATE_DIM
    assert env.action_dim == 4  # pd_ee_delta_pos: xyz + gripper
    # the same seed in a plain ManiSkill env gives the same vector
    plain = make_maniskill_env(_cfg().init_params, 1)
    try:
        expected, _ = plain.reset(seed=12)
    finally:
        plain.close()
    torch.testing.assert_close(obs["states"][1], torch.as_tensor(expected)[0].float())


def test_state_steps_move_the_robot(env):
    obs, _ = env.reset(reset_state_ids=torch.tensor([3, 4]))
    actions = torch.zeros(2, 2, 4)
    actions[:, :, 0] = 1.0  # +x with the end effector
    result = env.chunk_step(actions)
    check_result(env, result, chunk=2)
    tcp_x = slice(18, 19)  # tcp pose follows qpos and qvel
    assert torch.all(result.obs["states"][:, tcp_x] > obs["states"][:, tcp_x] + 1e-3)
    assert torch.all(result.rewards > 0)  # normalized_dense reaching reward


def test_env_worker_channels_carry_state_obs():
    with EnvWorkerPool(_cfg(), num_workers=1, stages=1, seed=7, max_chunk=1) as pool:
        (obs,) = pool.reset(reset_state_ids=torch.tensor([5, 6]))
        assert obs["main_images"].shape == (2, 0, 0, 3) and obs["states"].shape == (2, PUSHCUBE_STATE_DIM)
        result = pool.step(0, torch.zeros(2, 1, 4))
    assert result.obs["states"].shape == (2, PUSHCUBE_STATE_DIM)
    assert not torch.equal(result.obs["states"], obs["states"])  # qvel / poses change under gravity and control


def test_image_free_small_policy_acts_on_state_obs(env):
    torch.manual_seed(0)
    policy = build_policy(SmallModelConfig(use_image=False, state_dim=PUSHCUBE_STATE_DIM, action_dim=4,
                                           num_action_chunks=1, size="tiny"))
    obs, _ = env.reset(reset_state_ids=torch.tensor([1, 2]))
    out = policy.predict(obs, "train")
    assert out.actions.shape == (2, 1, 4) and "images" not in out.forward_inputs
    torch.testing.assert_close(policy.evaluate(out.forward_inputs).logprobs, out.logprobs, atol=1e-5, rtol=0)
    check_result(env, env.chunk_step(out.actions), chunk=1)
    image_policy = build_policy(SmallModelConfig(state_dim=PUSHCUBE_STATE_DIM, action_dim=4, size="tiny"))
    with pytest.raises(UserError, match="use_image"):
        image_policy.predict(obs, "train")

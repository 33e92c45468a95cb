"""The VecEnv contract, run against every adapter that can run here.

builtin: always. ManiSkill PickCube-v1: CPU physics on lavapipe (needs Mesa 25; runs in CI). MetaWorld: two MT50
tasks at 32 px (skipped without the `metaworld` extra). LIBERO: its episodes live in test_libero_suites.py.
"""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.config.env import BuiltinEnvConfig, ManiSkillEnvConfig, MetaWorldEnvConfig
from rlvla_cli.envs.base import ChunkStepResult, VecEnv
from rlvla_cli.envs.registry import build_env

MAX_STEPS = 5


def _maniskill_env() -> VecEnv:
    cfg = ManiSkillEnvConfig(
        total_num_envs=2, max_episode_steps=MAX_STEPS, ignore_terminations=True,
        init_params={"id": "PickCube-v1", "camera_width": 48, "camera_height": 48},
    )
    return build_env(cfg, seed=7)


def _builtin_env() -> VecEnv:
    return build_env(BuiltinEnvConfig(total_num_envs=4, max_episode_steps=MAX_STEPS, ignore_terminations=True), seed=7)


def _metaworld_env() -> VecEnv:
    pytest.importorskip("metaworld", reason="metaworld (the `metaworld` extra) is not installed")
    cfg = MetaWorldEnvConfig(
        total_num_envs=2, max_episode_steps=MAX_STEPS, ignore_terminations=True,
        init_params={"camera_width": 32, "camera_height": 32, "task_ids": [31, 41], "num_steps_wait": 2},
    )
    return build_env(cfg, seed=7)


@pytest.fixture(scope="module", params=["builtin", "maniskill", "metaworld"])
def env(request):
    makers = {"builtin": _builtin_env, "maniskill": _maniskill_env, "metaworld": _metaworld_env}
    vec_env = makers[request.param]()
    yield vec_env
    vec_env.close()


def check_obs(env: VecEnv, obs: dict) -> None:
    batch, spec = env.num_envs, env.obs_spec
    assert obs["main_images"].dtype == torch.uint8 and tuple(obs["main_images"].shape) == (batch, *spec.image_shape)
    assert obs["states"].dtype == torch.float32 and tuple(obs["states"].shape) == (batch, spec.state_dim)
    assert ("wrist_images" in obs) == spec.has_wrist
    texts = obs["task_descriptions"]
    assert isinstance(texts, list) and len(texts) == batch and all(isinstance(t, str) and t for t in texts)


def check_result(env: VecEnv, result: ChunkStepResult, chunk: int) -> None:
    batch = env.num_envs
    check_obs(env, result.obs)
    assert result.rewards.dtype == torch.float32 and tuple(result.rewards.shape) == (batch, chunk)
    for flags in (result.terminations, result.truncations, result.infos["success"]):
        assert flags.dtype == torch.bool and tuple(flags.shape) == (batch, chunk)
    assert result.infos["final_mask"].dtype == torch.bool and tuple(result.infos["final_mask"].shape) == (batch,)


def test_reset_observation_and_ids(env):
    obs, info = env.reset(seed=3)
    check_obs(env, obs)
    assert info["reset_state_ids"].dtype == torch.int64 and info["reset_state_ids"].shape == (env.num_envs,)


def test_same_reset_state_gives_same_observation(env):
    ids = torch.arange(env.num_envs) + 100
    first, _ = env.reset(reset_state_ids=ids)
    env.chunk_step(torch.zeros(env.num_envs, 1, env.action_dim))
    again, _ = env.reset(reset_state_ids=ids)
    assert torch.equal(first["main_images"], again["main_images"]) and torch.allclose(first["states"], again["states"])
    other, _ = env.reset(reset_state_ids=ids + 1)
    assert not torch.equal(first["main_images"], other["main_images"])


def test_chunks_truncation_auto_reset_and_metrics(env):
    env.reset(seed=5)
    generator = torch.Generator().manual_seed(0)
    steps, ended = 0, None
    for chunk in (2, 1, 3):  # 6 steps > MAX_STEPS: the episode ends inside the last chunk
        result = env.chunk_step(torch.rand(env.num_envs, chunk, env.action_dim, generator=generator) * 2 - 1)
        check_result(env, result, chunk)
        steps += chunk
        if result.infos["final_mask"].any():
            ended = result
    assert ended is not None and ended.infos["final_mask"].all()  # ignore_terminations: all truncate together
    assert ended.truncations[:, 1].all() and not ended.truncations[:, 2].any()  # step 5 is index 1 of the chunk
    assert not ended.terminations.any()
    episode = ended.infos["episode"]
    assert torch.all(episode["episode_len"] == MAX_STEPS)
    assert set(episode) == {"success_once", "success_at_end", "return", "episode_len", "reward"}
    assert torch.allclose(episode["reward"], episode["return"] / MAX_STEPS)
    check_obs(env, ended.infos["final_observation"])

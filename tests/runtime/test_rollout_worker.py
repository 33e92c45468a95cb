"""Rollouts over real env workers (built-in task): batch shapes, pipeline stages, truncation bootstrap."""

from __future__ import annotations

import pytest
import torch
from tiny_policy import TinyPolicy

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.config.env import BuiltinEnvConfig
from rlvla_cli.envs.workers.pool import EnvWorkerPool
from rlvla_cli.runtime.rollout_worker import RolloutWorker, episode_metrics


def env_cfg(**kw) -> BuiltinEnvConfig:
    return BuiltinEnvConfig.model_validate({"total_num_envs": 4, "max_episode_steps": 4,
                                            "max_steps_per_rollout_epoch": 8,
                                            "init_params": {"image_size": 32}, **kw})


@pytest.mark.parametrize("stages", [1, 2])
def test_rollout_batch_shapes_and_bootstrap(stages):
    torch.manual_seed(0)
    policy = TinyPolicy(num_action_chunks=2)
    with EnvWorkerPool(env_cfg(), num_workers=1, stages=stages, max_chunk=2) as pool:
        worker = RolloutWorker(policy, "cpu", pool, steps_per_rollout=4)
        result = worker.collect(seed=3)
        again = worker.collect(seed=3)
    batch = result.batch
    assert batch.rewards.shape == (4, 4, 2) and batch.old_logprobs.shape == (4, 4, 2, 7)
    assert batch.old_values.shape == (4, 4, 1) and batch.last_values.shape == (4, 1)
    assert result.env_steps == 4 * 4 * 2
    # Episodes of 4 env steps = 2 chunks: envs that did not succeed are truncated at t = 1 and t = 3; every
    # episode end records V(final obs) (algorithm.bootstrap_type picks which GAE uses); elsewhere it is 0.
    truncated = batch.truncations.any(-1)
    ended = truncated | batch.terminations.any(-1)
    assert truncated.any()
    assert torch.all(batch.bootstrap_values[~ended] == 0)
    assert torch.all(batch.bootstrap_values[ended] != 0)
    assert result.episodes["success_once"].numel() >= 4
    assert set(episode_metrics(result.episodes)) >= {"env/success_once", "env/return", "env/episode_len"}
    # The env side is a pure function of the seed: the same reset states and layouts again.
    assert torch.equal(again.batch.forward_inputs["states"][0], batch.forward_inputs["states"][0])


def test_concat_rollout_epochs_and_stop():
    torch.manual_seed(0)
    policy = TinyPolicy(num_action_chunks=2)
    with EnvWorkerPool(env_cfg(), num_workers=2, stages=1, max_chunk=2) as pool:
        worker = RolloutWorker(policy, "cpu", pool, steps_per_rollout=2)
        merged = RolloutBatch.cat([worker.collect(1).batch, worker.collect(2).batch])
        assert merged.num_envs == 8 and merged.last_values.shape == (8, 1)
        worker.should_stop = lambda: True
        assert worker.collect(3) is None
        worker.should_stop = lambda: False  # the pool stays usable after an aborted rollout
        assert worker.collect(4).batch.num_envs == 4

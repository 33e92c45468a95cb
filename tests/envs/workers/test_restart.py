"""Issue 19: a dead env worker is noticed by the watchdog within seconds, restarted over the same env groups and
shared-memory blocks, and the pool then steps exactly as an undisturbed one (reset seeds every env)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from rlvla_cli.config.env import BuiltinEnvConfig
from rlvla_cli.envs.workers.channels import list_segments
from rlvla_cli.envs.workers.pool import EnvWorkerPool
from rlvla_cli.envs.workers.watchdog import exit_reason
from rlvla_cli.errors import WorkerDied

CFG = BuiltinEnvConfig(total_num_envs=8, max_episode_steps=4)


def _rollout(pool: EnvWorkerPool, seed: int, steps: int = 5) -> list[torch.Tensor]:
    """Rewards and images of ``steps`` chunks on both stages with fixed actions (comparable across pools)."""
    obs = pool.reset(seed=seed)
    out = [torch.cat([o["main_images"] for o in obs])]
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for s in range(pool.stages):
            actions = torch.rand(pool.envs_per_stage, 2, 7, generator=generator) * 2 - 1
            result = pool.step(s, actions)
            out += [result.rewards, result.obs["main_images"], result.obs["states"]]
    return out


def test_watchdog_reports_a_killed_worker_while_the_driver_is_idle():
    seen: list[tuple[int, float]] = []
    event = threading.Event()

    def on_death(worker: int, pid: int | None, reason: str) -> None:
        seen.append((worker, time.monotonic(), reason))
        event.set()

    with EnvWorkerPool(CFG, num_workers=2, stages=1, seed=1, max_chunk=2, on_death=on_death) as pool:
        pool.reset(seed=1)
        os.kill(pool.worker_pids()[1], signal.SIGKILL)
        killed = time.monotonic()
        assert event.wait(timeout=3.0), "the watchdog did not report the death within 3 s"
        worker, when, reason = seen[0]
        assert worker == 1 and when - killed < 3.0 and reason == "killed by SIGKILL"
        assert pool.dead_workers() == [1]


def test_restart_mid_chunk_then_steps_like_an_undisturbed_pool():
    before = list_segments()
    with EnvWorkerPool(CFG, num_workers=2, stages=2, seed=7, max_chunk=2) as reference:
        expected = _rollout(reference, seed=11)
    with EnvWorkerPool(CFG, num_workers=2, stages=2, seed=7, max_chunk=2) as pool:
        segments = list_segments() - before
        pool.reset(seed=3)
        pool.send_actions(0, torch.zeros(pool.envs_per_stage, 2, 7))
        pool.send_actions(1, torch.zeros(pool.envs_per_stage, 2, 7))  # worker 0 has two replies in flight
        old_pid = pool.worker_pids()[1]
        os.kill(old_pid, signal.SIGKILL)
        with pytest.raises(WorkerDied, match="died") as info:
            pool.recv(0)
            pool.recv(1)
        assert info.value.worker == 1 and info.value.exitcode == -signal.SIGKILL
        assert pool.restart_dead() == [1]
        assert pool.restarts == 1 and pool.worker_pids()[1] != old_pid and pool.dead_workers() == []
        assert list_segments() - before == segments  # the same blocks, re-attached
        got = _rollout(pool, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert not list_segments() - before  # (a segment of an earlier test may vanish meanwhile)


def test_a_worker_dying_again_at_start_surfaces_as_worker_died():
    with EnvWorkerPool(CFG, num_workers=1, stages=1, seed=1, max_chunk=2) as pool:
        os.kill(pool.worker_pids()[0], signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(WorkerDied):
            pool.reset(seed=1)
        assert pool.restart_dead() == [0]
        assert len(pool.reset(seed=1)) == 1


def test_exit_reason():
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(1) == "exit code 1"
    assert exit_reason(None) == "still running"

"""Env worker processes: identical results to in-process stepping, pipelining, dead workers, clean shutdown."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from rlvla_cli.config.env import BuiltinEnvConfig, ManiSkillEnvConfig
from rlvla_cli.envs.registry import build_env
from rlvla_cli.envs.workers.channels import list_segments
from rlvla_cli.envs.workers.pool import EnvWorkerPool
from rlvla_cli.errors import UserError, WorkerError


def test_two_workers_two_stages_match_one_in_process_env():
    cfg = BuiltinEnvConfig(total_num_envs=16, max_episode_steps=6, group_size=2)
    before = list_segments()
    reference = build_env(cfg, seed=3)
    reference_obs, _ = reference.reset(seed=3)
    with EnvWorkerPool(cfg, num_workers=2, stages=2, seed=3, max_chunk=4) as pool:
        assert pool.envs_per_stage == 8 and len(list_segments() - before) == 4
        stage_obs = pool.reset(seed=3)
        assert torch.equal(torch.cat([o["main_images"] for o in stage_obs]), reference_obs["main_images"])
        assert stage_obs[0]["task_descriptions"] + stage_obs[1]["task_descriptions"] == reference_obs[
            "task_descriptions"]
        generator = torch.Generator().manual_seed(1)
        for _ in range(6):
            actions = torch.rand(16, 3, 7, generator=generator) * 2 - 1
            pool.send_actions(0, actions[:8])
            pool.send_actions(1, actions[8:])  # both stages in flight; collect them out of order
            second, first = pool.recv(1), pool.recv(0)
            expected = reference.chunk_step(actions)
            assert torch.equal(torch.cat([first.rewards, second.rewards]), expected.rewards)
            assert torch.equal(torch.cat([first.obs["main_images"], second.obs["main_images"]]),
                               expected.obs["main_images"])
            assert torch.equal(torch.cat([first.truncations, second.truncations]), expected.truncations)
            if expected.infos["final_mask"].any():
                mask = expected.infos["final_mask"]
                got = torch.cat([first.infos["episode"]["return"], second.infos["episode"]["return"]])
                assert torch.allclose(got[mask], expected.infos["episode"]["return"][mask])
                finals = torch.cat([first.infos["final_observation"]["states"],
                                    second.infos["final_observation"]["states"]])
                assert torch.equal(finals[mask], expected.infos["final_observation"]["states"][mask])
    assert list_segments() == before


def test_killed_worker_raises_within_seconds_and_leaves_no_segments():
    before = list_segments()
    cfg = BuiltinEnvConfig(total_num_envs=4)
    pool = EnvWorkerPool(cfg, num_workers=2, stages=1, max_chunk=2)
    try:
        pool.reset()
        os.kill(pool.worker_pids()[1], signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(WorkerError, match="died"):
            pool.step(0, torch.zeros(4, 2, 7))
        assert time.monotonic() - start < 5.0
    finally:
        pool.close()
    assert list_segments() == before
    with pytest.raises(WorkerError):
        pool.reset()


def test_user_errors_in_a_worker_stay_user_errors():
    cfg = ManiSkillEnvConfig(total_num_envs=1, init_params={"id": "PutOnPlateInScene25Main-v3"})
    with pytest.raises(UserError, match="RLinf's ManiSkill fork"):
        EnvWorkerPool(cfg, num_workers=1)


def test_misuse_is_reported():
    with EnvWorkerPool(BuiltinEnvConfig(total_num_envs=2), max_chunk=2) as pool:
        pool.reset()
        with pytest.raises(WorkerError, match="without a chunk"):
            pool.recv(0)
        with pytest.raises(ValueError):
            pool.send_actions(0, torch.zeros(2, 3, 7))  # chunk longer than max_chunk
    with pytest.raises(ValueError):
        EnvWorkerPool(BuiltinEnvConfig(total_num_envs=6), num_workers=4)


_ORPHAN_SCRIPT = """
import time
from rlvla_cli.config.env import BuiltinEnvConfig
from rlvla_cli.envs.workers.pool import EnvWorkerPool
if __name__ == "__main__":
    pool = EnvWorkerPool(BuiltinEnvConfig(total_num_envs=4), num_workers=2)
    pool.reset()
    print(" ".join(map(str, pool.worker_pids())), flush=True)
    time.sleep(300)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_and_segments_vanish_when_the_runtime_is_killed(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "runtime.py"
    script.write_text(_ORPHAN_SCRIPT)
    before = list_segments()
    runtime = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                               cwd=os.getcwd(), stderr=subprocess.DEVNULL)
    try:
        pids = [int(p) for p in runtime.stdout.readline().split()]
        assert len(pids) == 2 and len(list_segments() - before) == 2
    finally:
        runtime.kill()
        runtime.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (any(_running(p) for p in pids) or list_segments() - before):
        time.sleep(0.2)
    assert not any(_running(p) for p in pids)  # no orphans: workers exit when their pipe closes
    assert list_segments() == before  # the resource tracker unlinks what the killed runtime owned

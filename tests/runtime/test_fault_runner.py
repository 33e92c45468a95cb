"""Issue 19 in the loop (in-process, CPU): a killed env worker is restarted and the run finishes; beyond
``runner.max_worker_restarts`` the run stops with ``RuntimeFault`` and a checkpoint of the last completed update;
out of memory the same; a full disk during a save is survived; a corrupted newest checkpoint falls back to the
previous one with a warning."""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time

import pytest
import torch
from runtime_configs import live_children, small_config
from tiny_policy import TinyPolicy, tiny_factory

from rlvla_cli.commands.train import hardware_placement
from rlvla_cli.envs.workers.channels import list_segments
from rlvla_cli.errors import CheckpointError, RuntimeFault
from rlvla_cli.rundir import checkpoint as ckpt
from rlvla_cli.runtime.runner import Runner


def _runner(tmp_path, steps: int, *overrides: str, factory=tiny_factory) -> Runner:
    cfg = small_config(tmp_path, steps=steps, overrides=overrides)
    placement, offload = hardware_placement(cfg)
    return Runner(cfg, placement, offload, factory=factory, console=False)


def _kill_worker_at(runner: Runner, steps: list[int], log: list) -> threading.Thread:
    """Kill env worker 0 once the loop has finished each of ``steps`` (a new pid each time: the restarted one)."""

    def kill() -> None:
        for step in steps:
            while runner.global_step < step or runner.pool is None:
                time.sleep(0.02)
            pid = runner.pool.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            log.append((step, pid))
            while runner.pool is not None and runner.pool.worker_pids()[0] == pid:
                time.sleep(0.02)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _metrics(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def test_killed_env_worker_is_restarted_and_the_run_finishes(tmp_path, capsys):
    before_children, before_segments = live_children(), list_segments()
    runner = _runner(tmp_path, 4)
    killed: list = []
    _kill_worker_at(runner, [1], killed)
    result = runner.run()
    assert result.status == "finished" and result.global_step == 4 and killed
    restarts = [m["train/worker_restarts"] for m in _metrics(tmp_path) if "train/worker_restarts" in m]
    assert restarts[0] == 0.0 and restarts[-1] == 1.0
    err = capsys.readouterr().err
    assert "env worker 0" in err and "killed by SIGKILL" in err and "restarted" in err
    assert live_children() <= before_children
    assert not list_segments() - before_segments


def test_beyond_max_restarts_stops_with_the_last_update_saved(tmp_path):
    before_children, before_segments = live_children(), list_segments()
    runner = _runner(tmp_path, 50, "runner.max_worker_restarts=1")
    killed: list = []
    _kill_worker_at(runner, [1, 2], killed)
    with pytest.raises(RuntimeFault) as info:
        runner.run()
    text = str(info.value)
    assert info.value.exit_code == 3 and "\n" not in text
    assert "env worker 0" in text and "killed by SIGKILL" in text and "runner.max_worker_restarts=1" in text
    step = runner.global_step
    assert step >= 2 and f"step {step}) is saved" in text
    assert ckpt.read_trainer_state(ckpt.list_checkpoints(tmp_path)[-1][1])["global_step"] == step
    assert live_children() <= before_children
    assert not list_segments() - before_segments


class _OutOfMemoryPolicy(TinyPolicy):
    """Raises CUDA's out-of-memory error on the 6th predict (during the rollout of step 2 with T = 4)."""

    calls = 0

    def predict(self, obs, mode="train", sampling=None):
        type(self).calls += 1
        if type(self).calls == 6:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().predict(obs, mode, sampling)


def _oom_factory(cfg, device):
    model = cfg.actor.model
    return _OutOfMemoryPolicy(state_dim=model.state_dim, action_dim=model.action_dim,
                              num_action_chunks=model.num_action_chunks)


def test_out_of_memory_in_the_rollout_keeps_the_last_update(tmp_path):
    _OutOfMemoryPolicy.calls = 0
    runner = _runner(tmp_path, 5, factory=_oom_factory)
    with pytest.raises(RuntimeFault) as info:
        runner.run()
    text = str(info.value)
    assert "ran out of memory during the rollout" in text and "Tried to allocate 2.00 GiB" in text
    assert "(step 1) is saved" in text and "Fix: lower actor.micro_batch_size" in text
    assert ckpt.read_trainer_state(ckpt.list_checkpoints(tmp_path)[-1][1])["global_step"] == 1


def test_full_disk_during_a_save_is_survived(tmp_path, monkeypatch, capsys):
    real = ckpt.save_policy_weights
    failures = []

    def full_disk_once(policy, directory):
        if not failures:
            failures.append(directory)
            raise OSError(errno.ENOSPC, "No space left on device", str(directory / "model.safetensors"))
        return real(policy, directory)

    monkeypatch.setattr(ckpt, "save_policy_weights", full_disk_once)
    runner = _runner(tmp_path, 3, "runner.save_interval=1")
    result = runner.run()
    assert result.status == "finished" and result.global_step == 3
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path)] == [2, 3]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if ".tmp-" in p.name]  # staging removed
    err = capsys.readouterr().err
    assert "checkpoint of step 1 was not written (No space left on device" in err


def _corrupt(path, truncate: bool) -> None:
    data = bytearray(path.read_bytes())
    if truncate:
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("truncate", [True, False], ids=["truncated", "flipped-byte"])
def test_corrupted_newest_checkpoint_falls_back_with_a_warning(tmp_path, capsys, truncate):
    assert _runner(tmp_path, 2, "runner.save_interval=1").run().global_step == 2
    newest = ckpt.list_checkpoints(tmp_path)[-1][1]
    engine_file = next((newest / "engine").rglob("*.pt"))
    _corrupt(engine_file, truncate)
    runner = _runner(tmp_path, 3, "runner.resume_dir=auto", "runner.save_interval=1")
    runner.setup()
    try:
        assert runner.global_step == 1  # resumed from global_step_1
    finally:
        runner.close()
    err = capsys.readouterr().err
    assert str(engine_file) in err and ("truncated" if truncate else "corrupted") in err
    assert "global_step_1 instead" in err
    explicit = _runner(tmp_path, 3, f"runner.resume_dir={newest}")
    with pytest.raises(CheckpointError, match=str(engine_file)):
        explicit.setup()
    explicit.close()

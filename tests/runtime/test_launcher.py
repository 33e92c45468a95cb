"""Launcher plumbing: signals, and a real DeepSpeed-launcher run (2 ranks on one node; multi-node runs start
one torchrun per node: test_multinode*.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from runtime_configs import small_config_dict, write_config

from rlvla_cli.rundir import checkpoint as ckpt
from rlvla_cli.runtime.launcher import free_port
from rlvla_cli.runtime.signals import StopRequest

REPO = Path(__file__).resolve().parents[2]


def test_stop_request_catches_sigterm_and_restores():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("deepspeed") is None, reason="the deepspeed launcher is not on PATH")
def test_deepspeed_launcher_two_ranks(tmp_path):
    """What a multi-node run does on each node, on one node: DeepSpeed's launcher starts 2 ranks of
    `rlvla train`; rank 0 drives, rank 1 serves as a trainer rank."""
    config = write_config(tmp_path / "two.yaml", small_config_dict(tmp_path / "run", "two_ranks", steps=2))
    # earlier in-process DeepSpeed tests may leave rendezvous variables behind; the launcher sets its own
    stale = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "CROSS_RANK",
             "CROSS_SIZE", "LOCAL_SIZE"}
    env = {k: v for k, v in os.environ.items() if k not in stale}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = ["deepspeed", "--num_gpus", "2", "--master_port", str(free_port()), "--no_local_rank",
               "--module", "rlvla_cli", "train", "--config", str(config)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    checkpoint = ckpt.resolve_resume_dir("auto", tmp_path / "run")
    assert checkpoint.name == "global_step_2"
    assert (checkpoint / "rng" / "rank_1.pt").is_file()

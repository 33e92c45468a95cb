"""`rlvla train` end to end on CPU: 2 trainer ranks (gloo) + 2 env workers, stopped by SIGTERM after step 2,
resumed, and step 3 matches an uninterrupted run; no process or shared-memory segment is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from runtime_configs import small_config_dict, write_config  # noqa: E402

from rlvla_cli.envs.workers.channels import list_segments  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMPARED = ("env/", "rollout/", "train/actor/", "train/critic/")


def _cli(config: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "rlvla_cli", "train", "--config", str(config), *overrides],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _train_record(run_dir: Path, step: int) -> dict:
    return [r for r in _records(run_dir) if r["step"] == step and "train/actor/policy_loss" in r][-1]


def test_sigterm_resume_matches_uninterrupted(tmp_path):
    segments_before = list_segments()
    data = small_config_dict(tmp_path / "straight", "two_ranks", steps=3, max_steps_per_rollout_epoch=16)
    straight = _cli(write_config(tmp_path / "straight.yaml", data))

    data["runner"]["output_dir"] = str(tmp_path / "stopped")
    config = write_config(tmp_path / "stopped.yaml", data)
    stopped = _cli(config)
    deadline = time.monotonic() + 240
    while not any(r["step"] == 2 for r in _records(tmp_path / "stopped")):
        assert stopped.poll() is None, stopped.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no step 2 within 240 s"
        time.sleep(0.02)
    stopped.send_signal(signal.SIGTERM)
    out = stopped.communicate(timeout=120)[0]
    assert stopped.returncode == 130, out[-3000:]
    assert (tmp_path / "stopped" / "checkpoints" / "global_step_2").is_dir(), out[-3000:]
    assert not any(r["step"] == 3 for r in _records(tmp_path / "stopped"))

    resumed = _cli(config, "runner.resume_dir=auto")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out[-3000:]
    out = straight.communicate(timeout=300)[0]
    assert straight.returncode == 0, out[-3000:]

    expected, got = _train_record(tmp_path / "straight", 3), _train_record(tmp_path / "stopped", 3)
    names = [k for k in expected if k.startswith(COMPARED)]
    assert len(names) > 10
    for name in names:
        assert got[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name
    assert list_segments() <= segments_before

"""`rlvla train` with no arguments (the built-in quickstart) reaches eval success_once >= 0.8 within 10 minutes
of wall-clock on a 2-core CPU (the issue's acceptance run; `scripts/quickstart_curve.py` draws the curve)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)  # the run stops at its first eval >= 0.8 (~3 min); 600 s is the bound asserted below
def test_quickstart_reaches_success_within_ten_minutes(tmp_path):
    # as a user runs it: `rlvla train` picks its own thread count (conftest pins tests to one thread)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "scripts/quickstart_curve.py", "--out", str(tmp_path), "--eval-every", "10",
               "--time-limit-s", "600", "--stop-at-success", "0.8"]
    subprocess.run(command, cwd=REPO, env=env, check=True, timeout=780, capture_output=True)
    curve = json.loads((tmp_path / "curve.json").read_text())
    reached = curve["first_eval_at_0.8"]
    assert reached is not None, curve["eval"][-5:]
    assert reached["seconds"] <= 600

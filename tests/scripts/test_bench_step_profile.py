"""Issue 18's scripts: bench_step's anchor table rows (pure), and profile_step / bench_step --anchor end to end at
toy size on the CPU (slow: two real runtimes and the toy anchor)."""

from __future__ import annotations

import json

import pytest
from script_loader import load_script


def test_anchor_rows_line_up_phases_with_the_anchor_and_the_limit():
    summary = {"time/generate_rollouts": 2.0, "time/actor_training": 3.0, "time/step": 5.5}
    anchor = {"rollout_s": 1.0, "update_s": 2.5, "limit_rollout_s": 0.5, "limit_update_s": 1.0}
    rows = load_script("bench_step").anchor_rows(summary, anchor)
    assert rows == [("rollout", 2.0, 1.0, 0.5), ("training", 3.0, 2.5, 1.0), ("step", 5.5, 3.5, 1.5)]


@pytest.mark.slow
def test_profile_step_writes_phase_tables_and_anchor(tmp_path):
    argv = ["--size", "tiny", "--envs", "2", "--rollout-steps", "16", "--warmup", "1", "--anchor", "tiny",
            "--out-dir", str(tmp_path), "--label", "p", "--run-dir", str(tmp_path / "run"),
            "actor.micro_batch_size=2"]
    assert load_script("profile_step").main(argv) == 0
    summary = json.loads((tmp_path / "p.json").read_text())
    for phase in ("rollout", "training"):
        info = summary["phases"][phase]
        assert (tmp_path / f"p_{phase}.txt").read_text().startswith(f"# p: {phase} phase")
        assert info["flops"] > 0 and info["wall_s"] > 0 and info["top"]
        assert info["parts"]["part/llama_stack"]["calls"] > 0  # the policy's parts are annotated
    assert summary["anchor"]["update_flops"] > 0 and (tmp_path / "p_anchor_update.txt").is_file()


@pytest.mark.slow
def test_bench_step_auto_micro_and_anchor(tmp_path):
    out = tmp_path / "s.json"
    argv = ["--size", "tiny", "--steps", "2", "--envs", "2", "--rollout-steps", "16", "--out", str(out),
            "--run-dir", str(tmp_path / "run"), "--anchor", "tiny", "actor.micro_batch_size=auto"]
    assert load_script("bench_step").main(argv) == 0
    payload = json.loads(out.read_text())
    assert payload["micro_batch"] == 4  # CPU: the largest divisor of the 4 samples a step collects (<= 16)
    assert payload["anchor"]["samples"] == 4 and payload["anchor"]["micro"] == 4

"""scripts/vla_learning.py: the report splice (fast) and a shortened CPU pipeline whose RL must beat its SFT base
(slow, opt-in).

The pipeline test runs real commands for minutes on 2 cores, so it is marked ``slow`` *and* skipped unless
``RLVLA_PIPELINE_TEST=1`` (the README's ``-m "not gpu"`` suite stays within CI's budget):

    RLVLA_PIPELINE_TEST=1 python3 -m pytest -q -m slow tests/scripts/test_vla_learning.py

``RLVLA_PIPELINE_MODEL`` picks the model (default ``openvla``).
"""

import json
import os
from pathlib import Path

import pytest
from script_loader import load_script

REPO = Path(__file__).resolve().parents[2]


def test_report_splice_replaces_only_the_marked_block():
    script = load_script("vla_learning")
    doc = f"# Results\n\nintro\n\n{script.BEGIN}\nold table\n{script.END}\n\n## GPU tier\nkept\n"
    out = script.splice(doc, "new table\n")
    assert "old table" not in out and "new table" in out
    assert out.startswith("# Results\n\nintro") and out.endswith("## GPU tier\nkept\n")
    assert script.splice("", "t\n") == f"{script.BEGIN}\nt\n{script.END}\n"
    assert script.splice("# R\n", "t\n").startswith("# R\n\n" + script.BEGIN)


def test_rl_progress_counts_env_steps(tmp_path):
    script = load_script("vla_learning")
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s}) for s in (1, 2, 3)) + "\n")
    (tmp_path / "config.yaml").write_text(
        "env:\n  train:\n    total_num_envs: 32\n    max_steps_per_rollout_epoch: 16\n    rollout_epoch: 2\n")
    assert script._rl_progress(tmp_path) == (3, 3 * 32 * 16 * 2)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RLVLA_PIPELINE_TEST") != "1", reason="set RLVLA_PIPELINE_TEST=1 (minutes)")
def test_shortened_pipeline_rl_beats_the_sft_base(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    script = load_script("vla_learning")
    model = os.environ.get("RLVLA_PIPELINE_MODEL", "openvla")  # the tiny OFT cannot learn it (docs/results.md)
    args = ["--out", str(tmp_path), "--models", model, "--rl-epochs", "20", "--eval-episodes", "64",
            "--time-budget-s", "1500", "--report", str(tmp_path / "report.md")]
    assert script.main(args) == 0
    base = json.loads((tmp_path / model / "eval" / "base" / "report.json").read_text())
    ppo = json.loads((tmp_path / model / "eval" / "ppo" / "report.json").read_text())
    rate = {name: r["eval_sets"]["eval"]["average"]["success_rate"] for name, r in (("base", base), ("ppo", ppo))}
    assert rate["ppo"] > rate["base"], rate
    assert f"| {script.LABELS[model]} |" in (tmp_path / "report.md").read_text()

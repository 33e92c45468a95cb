"""scripts/vla_sweep.py: variant parsing and the per-variant summary read from a vla_learning.py directory."""

import json

import pytest
from script_loader import load_script


def test_variant_is_a_name_and_shell_split_arguments():
    script = load_script("vla_sweep")
    assert script.parse_variant('oft="--models openvla_oft --extra a.b=1 c.d=\'x y\'"'.replace('"', "")) == (
        "oft", ["--models", "openvla_oft", "--extra", "a.b=1", "c.d=x y"])
    with pytest.raises(SystemExit):
        script.parse_variant("--models openvla_oft")


def test_summary_reads_stage_times_eval_reports_and_rl_metrics(tmp_path):
    script = load_script("vla_sweep")
    model = tmp_path / "openvla_oft"
    (model / "sft").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "seconds.json").write_text(json.dumps({"sft_openvla_oft": 12.5, "ppo_openvla_oft": 40}))
    report = {"eval_sets": {"eval": {"average": {"success_rate": 0.25}}, "ood": {"average": {"success_rate": 0.125}}}}
    (model / "eval" / "base").mkdir(parents=True)
    (model / "eval" / "base" / "report.json").write_text(json.dumps(report))
    (model / "ppo").mkdir()
    lines = [{"step": 1, "env/success_once": 0.2}, {"step": 2, "env/success_once": 0.4, "eval/success_once": 0.5}]
    (model / "ppo" / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (row,) = script.variant_summary(tmp_path)
    assert (row["model"], row["sft_s"], row["base"], row["base_ood"]) == ("openvla_oft", 12.5, 0.25, 0.125)
    assert row["ppo"] == {"steps": 2, "train_first": 0.2, "train_last": 0.4, "eval_last": 0.5}
    assert row["grpo"]["steps"] == 0 and row["ppo_heldout"] is None

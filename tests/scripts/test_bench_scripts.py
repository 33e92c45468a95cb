"""The benchmark scripts (bench_train, bench_sync, bench_step, bench_envs) run end to end at toy size on the CPU and
write the JSON their docs describe (the GPU numbers come from the same code at full size)."""

import json
from pathlib import Path

import pytest
from script_loader import load_script

REPO = Path(__file__).resolve().parents[2]


def test_bench_train_times_every_micro_batch_with_prediction_and_profile(tmp_path):
    out = tmp_path / "train.json"
    assert load_script("bench_train").main(["--size", "tiny", "--device", "cpu", "--models", "openvla_oft,pi0",
                                        "--micro-batches", "1,2,3,4", "--samples", "4", "--repeats", "1",
                                        "--profile", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["openvla_oft", "pi0"]
    for row in rows:
        assert [m["micro_batch"] for m in row["micro"]] == [1, 2, 4]  # 3 does not divide the 4 samples
        for m in row["micro"]:
            assert m["update_s"] > 0 and m["flops_per_update"] > 0 and m["predicted_gib"] > 0
            assert m["tokens_per_s"] == pytest.approx(m["samples_per_s"] * row["tokens_per_sample"])
        assert row["trainable"] < row["params"] and row["profile"]["top"]


def test_bench_sync_one_device_shares_and_copies(tmp_path):
    out = tmp_path / "sync1.json"
    args = ["--device", "cpu", "--layers", "2", "--hidden", "128", "--vocab", "500", "--repeats", "2"]
    assert load_script("bench_sync").main([*args, "--gpus", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["result"]
    assert result["params"] == 2 * 500 * 128 + 2 * (4 * 128 * 128 + 3 * 128 * 344 + 2 * 128) + 128
    # no timing comparison (flaky on a loaded CPU): the script itself asserts that share aliases the trainer's
    # storage and that copy makes the rollout weights equal
    assert result["share_s"] >= 0 and result["copy_s"] > 0 and result["raw_copy_s"] > 0


def test_bench_sync_two_ranks_broadcast_makes_weights_equal(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # the spawned ranks import bench_sync by name
    out = tmp_path / "sync2.json"
    args = ["--device", "cpu", "--layers", "1", "--hidden", "64", "--vocab", "100", "--repeats", "1"]
    assert load_script("bench_sync").main([*args, "--gpus", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["result"]
    assert result["ranks_equal"] and result["broadcast_weights_s"] > 0 and result["raw_broadcast_s"] > 0


def test_bench_step_runs_the_runtime_and_breaks_the_step_down(tmp_path):
    out = tmp_path / "step.json"
    assert load_script("bench_step").main(["--size", "tiny", "--steps", "2", "--envs", "2", "--rollout-steps", "8",
                                       "--run-dir", str(tmp_path / "run"), "--out", str(out),
                                       "actor.global_batch_size=4"]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["steps"]) == 2 and payload["env"] == "builtin"
    summary = payload["steady_state"]
    assert summary["time/step"] >= summary["time/generate_rollouts"] > 0 and summary["time/actor_training"] > 0
    assert not (tmp_path / "run" / "checkpoints").exists()  # a benchmark writes no checkpoint


def test_bench_envs_compares_raw_and_worker_stepping_on_the_same_groups(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # the spawned raw processes import bench_envs by name
    out = tmp_path / "envs.json"
    assert load_script("bench_envs").main(["--skip-maniskill", "--builtin-envs", "8", "--builtin-processes", "1,2",
                                           "--chunks", "3", "--repeats", "1", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert [(r["processes"], r["num_envs"]) for r in payload["rows"]] == [(1, 8), (2, 8)]
    for row in payload["rows"]:
        for stages in (1, 2):
            raw, workers = row[f"raw_{stages}stage_steps_per_s"], row[f"workers_{stages}stage_steps_per_s"]
            assert raw > 0 and workers > 0
            assert row[f"overhead_{stages}stage_pct"] == pytest.approx(100.0 * (raw / workers - 1.0))
        assert row["oversubscribed"] == (row["processes"] + 1 > payload["cpu_count"])


@pytest.mark.parametrize(("script", "flags", "key"), [
    ("bench_envs", ["--builtin-envs", "10", "--builtin-processes", "3", "--skip-maniskill"], "--builtin-envs"),
    ("bench_envs", ["--maniskill-workers", "x"], "--maniskill-workers"),
    ("bench_train", ["--models", "pi9"], "--models"),
    ("bench_train", ["--micro-batches", "2,0"], "--micro-batches"),
    ("bench_models", ["--batches", "8,x"], "--batches"),
])
def test_bad_flags_exit_2_naming_the_flag_before_any_work(tmp_path, capsys, script, flags, key):
    out = tmp_path / "out.json"
    assert load_script(script).main([*flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"`{key}`" in err and "Fix:" in err
    assert not out.exists()

"""scripts/bench_rollout.py on real env workers and real policies (tiny sizes, CPU): the JSON's shape and that
every throughput is positive; bad flags are user errors (exit 2)."""

import json

import pytest
from script_loader import load_script


def _check(payload: dict, cases: set[tuple[str, int]]) -> None:
    assert payload["machine"]["cpu"] and payload["machine"]["cpu_count"] >= 1 and payload["date"]
    assert {(row["model"], row["stages"]) for row in payload["rows"]} == cases
    for row in payload["rows"]:
        assert row["env_steps_per_s"] > 0 and row["env_only_steps_per_s"] > 0 and row["predict_mean_s"] > 0
        assert row["ratio"] == pytest.approx(row["env_steps_per_s"] / row["env_only_steps_per_s"])
        assert row["ratio_pair_median"] > 0
        best = row["best_rollout"]
        assert best["predict_batch"] == row["envs_per_stage"] == row["num_envs"] // row["stages"]
        assert best["env_steps"] == 2 * row["num_envs"] * row["chunk"]  # --steps 2
        shares = [best[k] for k in ("predict_share", "values_share", "recv_wait_share", "reset_share")]
        assert all(0 <= s <= 1 for s in shares) and sum(shares) <= 1 + 1e-6


def test_builtin_small_and_tiny_oft(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--env", "builtin", "--image-size", "64", "--processes", "1", "--envs-per-process", "2", "--steps", "2",
            "--size", "tiny", "--device", "cpu", "--threads", "1", "--repeats", "1", "--out", str(out)]
    assert load_script("bench_rollout").main(args) == 0
    _check(json.loads(out.read_text()), {("small", 1), ("small", 2), ("openvla_oft/tiny", 1),
                                         ("openvla_oft/tiny", 2)})
    assert "env-only steps/s" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "key"), [(["--stages", "1,3"], "--envs-per-process"), (["--models", "pi0"], None),
                                           (["--threads", "x"], None), (["--steps", "0"], None)])
def test_bad_flags_are_user_errors(tmp_path, flags, key, capsys):
    assert load_script("bench_rollout").main([*flags, "--env", "builtin", "--out", str(tmp_path / "x.json")]) == 2
    assert f"`{key or flags[0]}`" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_maniskill_two_processes(tmp_path):
    pytest.importorskip("mani_skill")
    out = tmp_path / "bench.json"
    args = ["--processes", "2", "--envs-per-process", "2", "--steps", "2", "--models", "openvla_oft", "--size", "tiny",
            "--stages", "2", "--device", "cpu", "--threads", "1", "--repeats", "1", "--out", str(out)]
    assert load_script("bench_rollout").main(args) == 0
    payload = json.loads(out.read_text())
    assert payload["env"].startswith("ManiSkill PickCube-v1 rgb 128")
    _check(payload, {("openvla_oft/tiny", 2)})

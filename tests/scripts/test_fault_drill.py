"""scripts/fault_drill.py against real `rlvla train` processes: the headline row (kill -9 of an env worker ->
restarted, run finishes, detected within 3 s, nothing left behind), then signals, kill -9 mid-save and a
corrupted checkpoint. Both start real processes (slow tier); tests/runtime/test_fault_runner.py covers the same
paths in-process in seconds. The full table is docs/reliability.md."""

import json

import pytest
from script_loader import load_script


def _run(tmp_path, rows: str) -> list[dict]:
    out = tmp_path / "drill.json"
    code = load_script("fault_drill").main(["--rows", rows, "--dir", str(tmp_path / "work"), "--json", str(out)])
    results = json.loads(out.read_text())
    assert [r["name"] for r in results] == rows.split(",")
    for row in results:
        assert row["passed"], (row["name"], {k: v for k, v in row["checks"].items() if not v}, row["notes"])
    assert code == 0
    return results


@pytest.mark.slow  # ~20 s unloaded, ~33 s on the shared 2-core machine: one real `rlvla train` start
def test_killed_env_worker_row(tmp_path):
    (row,) = _run(tmp_path, "env_worker_kill9")
    assert row["exit_code"] == 0 and row["detect_s"] < 3.0
    assert row["checks"]["no process left"] and row["checks"]["no /dev/shm left"]


@pytest.mark.slow
def test_signal_save_and_corruption_rows(tmp_path):
    rows = _run(tmp_path, "sigterm_mid_rollout,kill9_mid_save,corrupt_checkpoint")
    assert [r["exit_code"] for r in rows] == [130, -9, 2]


def test_unknown_row_is_refused(tmp_path):
    with pytest.raises(SystemExit) as info:
        load_script("fault_drill").main(["--rows", "nope", "--dir", str(tmp_path)])
    assert info.value.code == 2

"""An output directory that cannot be created is a user mistake: exit code 2 naming the key, no traceback."""

import subprocess
import sys

import pytest

from rlvla_cli.errors import UserError, ensure_output_dir


def test_ensure_output_dir_creates_parents(tmp_path):
    target = tmp_path / "a" / "b"
    assert ensure_output_dir(target, "--out") == target and target.is_dir()


def test_ensure_output_dir_refuses_an_impossible_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="`runner.output_dir`.*cannot create output directory"):
        ensure_output_dir(blocker / "run", "runner.output_dir")


@pytest.mark.parametrize("args, key", [
    (["train", "runner.output_dir={bad}"], "runner.output_dir"),
    (["collect-demos", "--env", "PickCube-v1", "-n", "1", "--out", "{bad}"], "--out"),
], ids=["train", "collect-demos"])
def test_cli_exit_code_for_unwritable_output(tmp_path, args, key):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = str(blocker / "out")
    proc = subprocess.run([sys.executable, "-m", "rlvla_cli", *[a.format(bad=bad) for a in args]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"`{key}`" in proc.stderr and "Traceback" not in proc.stderr

"""Issue 19 item 3: every committed checkpoint carries a manifest; verify() names a truncated, corrupted or
missing file; resume candidates are newest first with the older ones as fallbacks."""

from __future__ import annotations

import json
import zlib

import pytest

from rlvla_cli.errors import CheckpointError
from rlvla_cli.rundir import checkpoint as ckpt


def _checkpoint(run_dir, step: int, payload: bytes = b"0123456789" * 100):
    staging = ckpt.staging_dir(run_dir, step)
    (staging / "engine").mkdir()
    (staging / "engine" / "state.pt").write_bytes(payload)
    ckpt.write_json(staging / ckpt.TRAINER_STATE, {"global_step": step})
    return ckpt.commit(staging, step)


def test_manifest_records_size_and_crc32(tmp_path):
    path = _checkpoint(tmp_path, 1, b"abc")
    files = json.loads((path / ckpt.MANIFEST).read_text())["files"]
    assert set(files) == {"engine/state.pt", ckpt.TRAINER_STATE}
    assert files["engine/state.pt"] == {"size": 3, "crc32": zlib.crc32(b"abc")}  # 0x352441c2
    ckpt.verify(path)


@pytest.mark.parametrize(("damage", "words"), [
    (lambda f: f.write_bytes(f.read_bytes()[:500]), "has 500 bytes, 1000 were written (truncated)"),
    (lambda f: f.write_bytes(b"X" + f.read_bytes()[1:]), "does not match the checksum"),
    (lambda f: f.unlink(), "is missing"),
], ids=["truncated", "flipped", "missing"])
def test_verify_names_the_damaged_file(tmp_path, damage, words):
    path = _checkpoint(tmp_path, 1)
    target = path / "engine" / "state.pt"
    damage(target)
    with pytest.raises(CheckpointError) as info:
        ckpt.verify(path)
    assert str(target) in str(info.value) and words in str(info.value)
    assert "`runner.resume_dir`" in str(info.value)


def test_unreadable_manifest_and_legacy_checkpoints(tmp_path):
    path = _checkpoint(tmp_path, 1)
    (path / ckpt.MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json unreadable"):
        ckpt.verify(path)
    (path / ckpt.MANIFEST).unlink()
    ckpt.verify(path)  # written before manifests existed: loading errors are named by the runner instead


def test_resume_candidates_newest_first(tmp_path):
    for step in (1, 3, 2):
        _checkpoint(tmp_path, step)
    crashed = ckpt.staging_dir(tmp_path, 4)  # a kill -9 before the rename
    (crashed / "partial").write_bytes(b"x")
    names = [p.name for p in ckpt.resume_candidates("auto", tmp_path)]
    assert names == ["global_step_3", "global_step_2", "global_step_1"]
    assert [p.name for p in ckpt.resume_candidates(str(tmp_path), "unused")] == names
    one = tmp_path / "checkpoints" / "global_step_2"
    assert ckpt.resume_candidates(str(one), tmp_path) == [one]  # a named checkpoint has no fallback
    assert ckpt.resume_candidates(None, tmp_path) == []

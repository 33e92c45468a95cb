"""Checkpoint files: atomic commit, pruning, RNG round trip, resume lookup."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rlvla_cli.errors import UserError
from rlvla_cli.rundir import checkpoint as ckpt


def test_commit_is_atomic_and_replaces(tmp_path):
    staging = ckpt.staging_dir(tmp_path, 3)
    (staging / "a.txt").write_text("one")
    assert ckpt.list_checkpoints(tmp_path) == []  # staging dirs are not checkpoints
    final = ckpt.commit(staging, 3)
    assert final.name == "global_step_3" and (final / "a.txt").read_text() == "one" and not staging.exists()
    again = ckpt.staging_dir(tmp_path, 3)
    (again / "a.txt").write_text("two")
    ckpt.commit(again, 3)
    assert (final / "a.txt").read_text() == "two"
    assert [p.name for p in ckpt.checkpoints_root(tmp_path).iterdir()] == ["global_step_3"]


def test_half_written_checkpoint_is_ignored_and_pruned(tmp_path):
    for step in (1, 2, 3):
        staging = ckpt.staging_dir(tmp_path, step)
        ckpt.write_json(staging / ckpt.TRAINER_STATE, {"global_step": step})
        ckpt.commit(staging, step)
    crashed = ckpt.staging_dir(tmp_path, 4)  # a crash before commit
    (crashed / "partial.bin").write_bytes(b"x")
    assert ckpt.resolve_resume_dir("auto", tmp_path).name == "global_step_3"
    ckpt.prune(tmp_path, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [2, 3]
    assert not crashed.exists()


def test_rng_round_trip(tmp_path):
    ckpt.save_rng(tmp_path, "rank_0", extra={"env": [1, 2]})
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.random(), np.random.rand(), torch.rand(3)
    assert ckpt.load_rng(tmp_path, "rank_0") == {"env": [1, 2]}
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_resume_dir_resolution(tmp_path):
    assert ckpt.resolve_resume_dir(None, tmp_path) is None
    assert ckpt.resolve_resume_dir("auto", tmp_path) is None
    with pytest.raises(UserError, match="runner.resume_dir"):
        ckpt.resolve_resume_dir(str(tmp_path / "nope"), tmp_path)
    staging = ckpt.staging_dir(tmp_path, 5)
    ckpt.write_json(staging / ckpt.TRAINER_STATE, {"global_step": 5})
    final = ckpt.commit(staging, 5)
    assert ckpt.resolve_resume_dir(str(final), tmp_path) == final
    assert ckpt.resolve_resume_dir(str(tmp_path), "/elsewhere") == final
    assert ckpt.read_trainer_state(final)["global_step"] == 5


def test_policy_weights_fallback_safetensors(tmp_path):
    from safetensors.torch import load_file

    module = torch.nn.Linear(3, 2)
    ckpt.save_policy_weights(module, tmp_path / "policy")
    loaded = load_file(str(tmp_path / "policy" / "model.safetensors"))
    assert torch.equal(loaded["weight"], module.weight.detach())

"""Tracking sinks write real files: metrics.jsonl, TensorBoard event files, SwanLab offline logs."""

from __future__ import annotations

import json

import pytest
import torch

from rlvla_cli.errors import UserError
from rlvla_cli.tracking import Tracker
from rlvla_cli.tracking.console import live_line, summary_table
from rlvla_cli.tracking.sinks import WandbSink


def test_jsonl_and_tensorboard_written(tmp_path):
    tracker = Tracker(tmp_path, backends=["tensorboard"], console=False)
    tracker.log({"env/success_once": 0.5, "train/actor/grad_norm": torch.tensor(2.0), "time/step": 1}, step=1)
    tracker.log({"env/success_once": float("nan")}, step=2)
    tracker.close()
    tracker.close()  # idempotent
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 1 and lines[0]["env/success_once"] == 0.5 and lines[0]["train/actor/grad_norm"] == 2.0
    assert lines[1]["env/success_once"] is None  # NaN stored as null, still valid JSON
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("env/success_once")][0] == pytest.approx(0.5)


def test_swanlab_offline_writes_files(tmp_path):
    tracker = Tracker(tmp_path, backends=["swanlab"], swanlab_mode="offline", console=False, config={"a": 1})
    tracker.log({"env/return": 1.5}, step=1)
    tracker.close()
    assert any(p.is_file() for p in (tmp_path / "swanlab").rglob("*"))


def test_unknown_backend_is_user_error(tmp_path):
    with pytest.raises(UserError, match="logger_backends"):
        Tracker(tmp_path, backends=["mlflow"], console=False)


def test_wandb_missing_is_clear(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(UserError, match="pip install"):
        WandbSink(tmp_path, "p", "e", None)


def test_console_helpers_and_progress():
    from io import StringIO

    from rich.console import Console

    from rlvla_cli.tracking.console import ConsoleProgress

    assert live_line({"env/success_once": 0.25, "time/step": 1.0}) == "succ 0.25 | s/it 1"
    table = summary_table({"env/return": 1.0, "train/actor/lr": 1e-4, "other": 2.0}, step=3)
    assert table.row_count == 3
    buffer = StringIO()
    progress = ConsoleProgress(4, summary_every=2, console=Console(file=buffer, width=160, force_terminal=False))
    progress.update({"env/success_once": 1.0}, step=1)
    progress.update({"env/success_once": 1.0, "train/actor/lr": 0.5}, step=2)
    progress.close()
    text = buffer.getvalue()
    assert "train/actor/lr" in text and "succ 1" in text

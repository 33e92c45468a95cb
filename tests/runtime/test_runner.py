"""The loop in-process on CPU: every placement mode runs a step; NaN skips stop the run; a dead worker stops
it cleanly (no hang, no orphan process, no leaked shared memory)."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from runtime_configs import live_children, small_config
from tiny_policy import nan_factory, tiny_factory

from rlvla_cli.commands.train import hardware_placement
from rlvla_cli.envs.workers.channels import list_segments
from rlvla_cli.errors import RuntimeFault
from rlvla_cli.rundir import checkpoint as ckpt
from rlvla_cli.runtime.runner import Runner

DESIGN_METRICS = {
    "env/success_once", "env/return", "env/episode_len", "env/reward", "rollout/rewards", "rollout/advantages_mean",
    "rollout/returns_mean", "train/actor/policy_loss", "train/actor/approx_kl", "train/actor/clip_fraction",
    "train/actor/ratio", "train/actor/grad_norm", "train/actor/lr", "train/critic/lr", "train/critic/value_loss",
    "train/critic/explained_variance", "time/step", "time/sync_weights", "time/generate_rollouts",
    "time/cal_adv_and_returns", "time/actor_training", "perf/env_steps_per_s", "train/skipped_steps",
}


@pytest.mark.parametrize("mode", ["collocated", "disaggregated", "hybrid"])
def test_placement_mode_runs_a_step(tmp_path, mode):
    cfg = small_config(tmp_path, mode, steps=1, overrides=("actor.optim.lr=2e-4", "actor.optim.value_lr=5e-3"))
    placement, offload = hardware_placement(cfg)
    assert placement.mode == mode and placement.cpu_mode
    before = live_children()
    result = Runner(cfg, placement, offload, factory=tiny_factory, console=False).run()
    assert result.status == "finished" and result.global_step == 1
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert DESIGN_METRICS <= set(record), DESIGN_METRICS - set(record)
    assert record["train/actor/lr"] == 2e-4 and record["train/critic/lr"] == 5e-3  # constant schedule
    assert ckpt.read_trainer_state(result.checkpoint)["global_step"] == 1
    assert (result.checkpoint / "policy" / "model.safetensors").is_file()
    assert live_children() <= before


def test_only_eval_evaluates_without_updating(tmp_path):
    cfg = small_config(tmp_path, steps=3, overrides=("runner.only_eval=true",))
    placement, offload = hardware_placement(cfg)
    result = Runner(cfg, placement, offload, factory=tiny_factory, console=False).run()
    assert result.status == "finished" and result.global_step == 0 and result.checkpoint is None
    assert 0.0 <= result.last_metrics["eval/success_once"] <= 1.0
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert "eval/success_once" in record and "train/actor/policy_loss" not in record


def test_nan_losses_skip_then_stop_with_checkpoint(tmp_path):
    cfg = small_config(tmp_path, steps=10, overrides=("runner.max_consecutive_skipped=2",))
    placement, offload = hardware_placement(cfg)
    result = Runner(cfg, placement, offload, factory=nan_factory, console=False).run()
    assert result.status == "diverged" and result.global_step == 1  # 2 optimizer steps per training step
    assert result.last_metrics["train/skipped_steps"] == 2
    assert ckpt.read_trainer_state(result.checkpoint)["skipped_steps"] == 2


def test_dead_env_worker_stops_cleanly(tmp_path):
    cfg = small_config(tmp_path, steps=1000, overrides=("runner.max_worker_restarts=0",))
    placement, offload = hardware_placement(cfg)
    before_children, before_segments = live_children(), list_segments()
    runner = Runner(cfg, placement, offload, factory=tiny_factory, console=False)
    killed_at: list[float] = []

    def kill_worker() -> None:
        while runner.global_step < 1:
            time.sleep(0.05)
        os.kill(runner.pool.worker_pids()[0], 9)
        killed_at.append(time.monotonic())

    threading.Thread(target=kill_worker, daemon=True).start()
    with pytest.raises(RuntimeFault, match="env worker 0"):
        runner.run()
    assert time.monotonic() - killed_at[0] < 10.0
    assert live_children() <= before_children
    assert list_segments() <= before_segments

"""`rlvla train` and `rlvla eval` with the LIBERO preset (configs/libero_spatial_ppo_openpi.yaml) end to end on the
CPU: a tiny random pi0, 2 real LIBERO envs at 32 px, one PPO step, a checkpoint, then eval of that run directory
(~45 s on a 2-core build machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("libero", reason="hf-libero (the `libero` extra) is not installed")

from rlvla_cli.hub.libero_assets import installed_tree  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "actor.model.size": "tiny", "actor.model.model_path": "null", "actor.model.image_size": "32",
    "actor.model.precision": "fp32", "actor.deepspeed.bf16": "false", "actor.deepspeed.zero_stage": "0",
    "actor.micro_batch_size": "2", "actor.global_batch_size": "4", "algorithm.update_epoch": "1",
    "cluster.num_gpus_per_node": "1", "env.train.rollout_epoch": "1",
}
for split in ("train", "eval"):
    SMALL.update({f"env.{split}.total_num_envs": "2", f"env.{split}.max_episode_steps": "10",
                  f"env.{split}.max_steps_per_rollout_epoch": "10", f"env.{split}.init_params.task_ids": "[0]",
                  f"env.{split}.init_params.camera_height": "32", f"env.{split}.init_params.camera_width": "32",
                  f"env.{split}.init_params.num_steps_wait": "2"})


@pytest.mark.slow
@pytest.mark.skipif(installed_tree() is None, reason="LIBERO's PyPI asset packages are not installed")
def test_train_then_eval_with_the_libero_preset(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "run"
    overrides = [f"{k}={v}" for k, v in SMALL.items()] + [
        "runner.max_epochs=1", "runner.save_interval=-1", "runner.val_check_interval=-1",
        f"runner.output_dir={run_dir}", "runner.logger.logger_backends=[]"]
    train = subprocess.run([sys.executable, "-m", "rlvla_cli", "train", "--config",
                            str(REPO_ROOT / "configs" / "libero_spatial_ppo_openpi.yaml"), *overrides],
                           capture_output=True, text=True, env=env, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    assert (run_dir / "checkpoints" / "global_step_1").is_dir()
    evaluation = subprocess.run([sys.executable, "-m", "rlvla_cli", "eval", "--checkpoint", str(run_dir),
                                 "--episodes", "2", "--out", str(tmp_path / "eval")],
                                capture_output=True, text=True, env=env, timeout=600)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    tasks = report["eval_sets"]["eval"]["tasks"]
    assert tasks[0]["task"] == "libero_spatial" and tasks[0]["episodes"] == 2
    assert report["eval_sets"]["eval"]["episodes"][0]["lengths"] == [10, 10]

"""`rlvla eval` end to end on the built-in task with a checkpoint written inside the test in the real layout
(rundir/checkpoint.py: staging dir, policy/ via save_pretrained, trainer_state.json, config.yaml, commit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlvla_cli.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "actor.model.size=tiny",
    "env.train.total_num_envs=4",
    "env.eval.total_num_envs=4",
    "env.eval.max_episode_steps=10",
    "actor.micro_batch_size=4",
    "actor.global_batch_size=8",
]


def _save_run(run_dir: Path, step: int = 3):
    """A run directory holding one committed checkpoint of a freshly initialised tiny small policy."""
    from rlvla_cli.config.loader import dump_config, load_config
    from rlvla_cli.models.registry import build_policy
    from rlvla_cli.rundir import checkpoint as ckpt

    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    policy = build_policy(cfg.actor.model)
    staging = ckpt.staging_dir(run_dir, step)
    ckpt.save_policy_weights(policy, staging / "policy")
    ckpt.write_json(staging / ckpt.TRAINER_STATE, {"global_step": step, "env_steps": 96})
    (staging / "config.yaml").write_text(dump_config(cfg))
    ckpt.commit(staging, step)
    return cfg, policy


def test_eval_run_dir_prints_table_writes_report_and_video(tmp_path, capsys, monkeypatch):
    from rlvla_cli.commands.evaluate import run_eval

    monkeypatch.setenv("COLUMNS", "160")
    _save_run(tmp_path / "run")
    out = tmp_path / "eval_out"
    run_eval(None, tmp_path / "run", 3, True, out, ["env.eval.seed=5"])
    text = " ".join(capsys.readouterr().out.split())
    assert "builtin-tabletop" in text and "95% CI (Wilson)" in text and "average" in text

    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["checkpoint_kind"] == "checkpoint" and report["meta"]["checkpoint_step"] == 3
    assert report["meta"]["greedy"] is True and report["meta"]["model_type"] == "small"
    (row,) = report["eval_sets"]["eval"]["tasks"]
    assert row["episodes"] == 3 and 0.0 <= row["ci95_low"] <= row["success_rate"] <= row["ci95_high"] <= 1.0
    assert 1 <= row["mean_episode_len"] <= 10
    assert report["eval_sets"]["eval"]["average"]["episodes"] == 3
    (episodes,) = report["eval_sets"]["eval"]["episodes"]
    assert episodes["state_ids"] == [5, 6, 7]  # env.eval.seed=5: the reset states, for replaying failures
    assert sum(episodes["success"]) == row["successes"] and len(episodes["lengths"]) == 3
    assert len(report["videos"]) == 1
    video = Path(report["videos"][0])
    assert video.suffix == ".mp4" and video.stat().st_size > 1000 and video.is_relative_to(out)


def test_eval_of_hf_model_dir_matches_run_dir(tmp_path, capsys):
    """The policy/ folder alone (a Hugging Face layout directory) evaluates to the same numbers."""
    from rlvla_cli.commands.evaluate import run_eval

    _save_run(tmp_path / "run")
    policy_dir = next((tmp_path / "run" / "checkpoints").glob("global_step_*")) / "policy"
    run_eval(None, tmp_path / "run", 2, True, tmp_path / "a", TINY)
    run_eval(None, policy_dir, 2, True, tmp_path / "b", TINY)
    capsys.readouterr()
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert a["meta"]["checkpoint_kind"] == "checkpoint" and b["meta"]["checkpoint_kind"] == "hf_model"
    assert a["eval_sets"]["eval"]["episodes"] == b["eval_sets"]["eval"]["episodes"]


def test_lora_adapter_with_its_base(tmp_path, capsys):
    """A LoRA adapter directory plus the base model from the config."""
    from rlvla_cli.commands.evaluate import run_eval
    from rlvla_cli.config.loader import load_config
    from rlvla_cli.models.registry import build_policy

    base_cfg = load_config(None, TINY)
    torch.manual_seed(0)
    build_policy(base_cfg.actor.model).save_pretrained(tmp_path / "base")
    lora_cfg = base_cfg.actor.model.model_copy(update={"model_path": str(tmp_path / "base"), "is_lora": True})
    build_policy(lora_cfg).save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    overrides = [*TINY, f"actor.model.model_path={tmp_path / 'base'}"]
    run_eval(None, tmp_path / "adapter", 2, False, tmp_path / "out", overrides)
    capsys.readouterr()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["meta"]["checkpoint_kind"] == "lora" and report["meta"]["greedy"] is False
    assert report["eval_sets"]["eval"]["average"]["episodes"] == 2


def test_bad_checkpoint_is_a_user_error(tmp_path):
    from rlvla_cli.commands.evaluate import run_eval

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a run directory"):
        run_eval(None, tmp_path / "empty", 2, True, tmp_path / "out", [])
    with pytest.raises(UserError, match="does not exist"):
        run_eval(None, tmp_path / "missing", 2, True, tmp_path / "out", [])


def test_cli_exit_code_2_for_missing_checkpoint(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "rlvla_cli", "eval", "--checkpoint", str(tmp_path / "nope")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_eval_of_a_run_trained_by_rlvla_train(tmp_path, capsys):
    """One real PPO step with `rlvla train` (CPU, collocated), then `rlvla eval` of its run directory."""
    from rlvla_cli.commands.evaluate import run_eval

    run_dir = tmp_path / "run"
    train = [
        "runner.max_epochs=1", "runner.save_interval=-1", "runner.val_check_interval=-1",
        f"runner.output_dir={run_dir}", "runner.logger.logger_backends=[]", "actor.model.size=tiny",
        "actor.model.image_size=32", "env.train.init_params.image_size=32", "env.train.total_num_envs=8",
        "env.train.max_episode_steps=8", "env.train.max_steps_per_rollout_epoch=8", "env.eval.total_num_envs=4",
        "actor.micro_batch_size=8", "actor.global_batch_size=16", "algorithm.update_epoch=1",
        "cluster.num_gpus_per_node=1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlvla_cli", "train", *train], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_eval(None, run_dir, 4, True, tmp_path / "eval", [])
    capsys.readouterr()
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["meta"]["checkpoint_kind"] == "checkpoint" and report["meta"]["checkpoint_step"] == 1
    assert report["eval_sets"]["eval"]["average"]["episodes"] == 4
    assert len(report["videos"]) == 1 and Path(report["videos"][0]).stat().st_size > 1000


def test_worker_count_and_eval_sets():
    from rlvla_cli.commands.evaluate import default_workers, eval_sets_of
    from rlvla_cli.config.env import BuiltinEnvConfig, ManiSkillEnvConfig
    from rlvla_cli.config.loader import load_config

    assert default_workers(BuiltinEnvConfig()) == 1
    cpu = ManiSkillEnvConfig(total_num_envs=12)
    workers = default_workers(cpu)
    assert 12 % workers == 0 and 1 <= workers <= max(1, os.cpu_count() or 1)
    assert default_workers(ManiSkillEnvConfig(init_params={"sim_backend": "physx_cuda"})) == 1
    cfg = load_config(None, TINY)
    assert list(eval_sets_of(cfg)) == ["eval"] and eval_sets_of(cfg)["eval"] is cfg.env.eval

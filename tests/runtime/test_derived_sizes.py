"""The sizes derived from a config (RootConfig properties), by hand for the runtime test config."""

from __future__ import annotations

from pathlib import Path

from runtime_configs import small_config


def test_derived_sizes_of_the_small_config(tmp_path):
    # 8 envs, 8 env steps per rollout epoch in chunks of 2 -> T = 4; one rollout epoch -> 32 samples per step;
    # global batch 16 -> 2 optimizer steps per update epoch
    cfg = small_config(tmp_path, steps=3, overrides=("algorithm.update_epoch=2", "env.train.rollout_epoch=3"))
    assert cfg.chunk_steps_per_rollout == 4
    assert cfg.samples_per_step == 4 * 8 * 3
    assert cfg.optimizer_steps_per_step == 2 * (96 // 16)
    assert cfg.total_steps == 3 and cfg.total_optimizer_steps == 3 * 12
    assert cfg.run_dir == tmp_path


def test_run_dir_and_total_steps_fallbacks(tmp_path):
    cfg = small_config(tmp_path, steps=5, overrides=(
        "runner.output_dir=null", f"runner.logger.log_path={tmp_path / 'logs'}", "runner.logger.experiment_name=exp",
        "runner.max_steps=2", "actor.global_batch_size=24", "actor.micro_batch_size=8",
    ))
    assert cfg.run_dir == Path(tmp_path / "logs" / "exp")
    assert cfg.total_steps == 2  # max_steps > 0 wins over max_epochs
    assert cfg.optimizer_steps_per_step == 2  # 32 samples in global batches of 24: one full, one partial

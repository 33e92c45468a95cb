"""The SFT loop: shuffled global batches over demonstration steps, periodic evaluation in the simulator,
and a policy checkpoint that `rlvla train` starts RL from (``actor.model.model_path``)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.errors import ConfigError, ensure_output_dir
from rlvla_cli.sft.data import DemoBatch, dataset_statistics, load_demos
from rlvla_cli.sft.sensitivity import describe, input_sensitivity
from rlvla_cli.sft.update import sft_update

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig


@dataclass
class SFTResult:
    run_dir: Path
    policy_dir: Path
    steps: int
    history: list[dict[str, float]]


def _check_images(cfg: RootConfig, demos: DemoBatch) -> None:
    model = cfg.actor.model
    height = demos.main_images.shape[1]
    if model.model_type == "small" and model.image_size != height:
        raise ConfigError(
            f"the demonstrations are {height}x{height} images but the small policy expects {model.image_size}",
            key="actor.model.image_size", fix=f"set actor.model.image_size={height} (and the env camera to match)",
        )


def _prepare_policy(cfg: RootConfig, device: str):
    from rlvla_cli.models.registry import build_policy

    policy = build_policy(cfg.actor.model, device=device)
    stats, key = dataset_statistics(cfg.sft.dataset_path, cfg.sft.unnorm_key)
    if hasattr(policy, "set_dataset_statistics"):
        policy.set_dataset_statistics(stats, key)
    return policy, key


def _evaluate(policy: Any, cfg: RootConfig, episodes: int, video_dir: Path | None) -> dict[str, float]:
    from rlvla_cli.evaluation.runner import evaluate_policy

    if episodes <= 0:
        return {}
    policy.eval()
    result = evaluate_policy(policy, cfg.env.eval, episodes, greedy=True, video_dir=video_dir,
                             sampling_cfg=cfg.rollout.sampling)
    policy.train()
    return result.metrics(prefix="eval")


def run_sft(cfg: RootConfig, device: str | None = None, log=print) -> SFTResult:
    """Train ``cfg.actor.model`` on ``cfg.sft`` demonstrations; returns where the policy was saved."""
    from rlvla_cli.runtime.launcher import init_distributed, shutdown_distributed
    from rlvla_cli.runtime.trainer import Trainer

    if cfg.sft is None:
        raise ConfigError("the config has no `sft` section", key="sft",
                          fix="add `sft: {dataset_path: DIR}` (a directory written by `rlvla collect-demos`)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.runner.seed)
    demos = load_demos(cfg.sft.dataset_path, cfg.actor.model.num_action_chunks, cfg.sft.max_demos)
    _check_images(cfg, demos)
    run_dir = ensure_output_dir(cfg.run_dir, "runner.output_dir")
    batch_size = min(cfg.actor.global_batch_size, len(demos))
    steps_per_epoch = max(1, len(demos) // batch_size)
    total = steps_per_epoch * cfg.sft.num_epochs
    total = min(total, cfg.sft.max_steps) if cfg.sft.max_steps > 0 else total
    init_distributed(0, 1, device)
    try:
        policy, unnorm_key = _prepare_policy(cfg, device)
        trainer = Trainer(policy, cfg.actor, cfg.algorithm, 1, device, total, update_fn=sft_update)
        history = _train(trainer, cfg, demos, batch_size, total, run_dir, log)
        policy_dir = run_dir / "sft_policy"
        trainer.module.save_pretrained(policy_dir)
        sensitivity = input_sensitivity(trainer.module, demos, micro_batch_size=cfg.actor.micro_batch_size)
        log(describe(sensitivity))
    finally:
        shutdown_distributed()
    summary = {"steps": total, "demo_steps": len(demos), "unnorm_key": unnorm_key, "policy_dir": str(policy_dir),
               "input_sensitivity": sensitivity, "history": history}
    (run_dir / "sft_summary.json").write_text(json.dumps(summary, indent=2))
    return SFTResult(run_dir, policy_dir, total, history)


def _train(trainer, cfg, demos: DemoBatch, batch_size: int, total: int, run_dir: Path, log) -> list[dict]:
    generator = torch.Generator().manual_seed(cfg.runner.seed)
    history: list[dict[str, float]] = []
    step, started = 0, time.time()
    interval = cfg.sft.eval_interval
    while step < total:
        order = torch.randperm(len(demos), generator=generator)
        for begin in range(0, len(order) - batch_size + 1, batch_size):
            batch = demos.select(order[begin: begin + batch_size])
            metrics = trainer.train(batch, step)
            step += 1
            record = {"step": step, "time": round(time.time() - started, 1), **metrics}
            if interval and step % interval == 0 and step < total:
                record.update(_evaluate(trainer.module, cfg, cfg.sft.eval_episodes, None))
            history.append(record)
            if cfg.sft.save_interval and step % cfg.sft.save_interval == 0 and step < total:
                trainer.module.save_pretrained(run_dir / f"sft_policy_step{step}")
            if step == 1 or step % max(1, total // 20) == 0 or "eval/success_once" in record:
                log(_line(record))
            if step >= total:
                break
    final = _evaluate(trainer.module, cfg, cfg.sft.eval_episodes, run_dir / "videos")
    if final:
        history[-1].update(final)
        log(_line(history[-1]))
    return history


def _line(record: dict) -> str:
    keys = ("train/sft/loss", "eval/success_once", "train/actor/grad_norm")
    parts = [f"{k.split('/')[-1]}={record[k]:.4g}" for k in keys if k in record and not math.isnan(record[k])]
    return f"step {record['step']} ({record['time']}s): " + " ".join(parts)

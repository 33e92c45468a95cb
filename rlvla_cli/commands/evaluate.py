"""`rlvla eval`: load a checkpoint, run episodes on every eval set, print the table, write report.json + videos."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from rlvla_cli.config.env import EnvConfigBase
    from rlvla_cli.config.schema import RootConfig


def eval_sets_of(cfg: RootConfig) -> dict[str, Any]:
    """``env.eval`` as the set ``eval``, then every extra set (``env.eval_sets``: name -> env config, e.g. the
    out-of-distribution splits) when the config has that key."""
    sets = {"eval": cfg.env.eval}
    extra = getattr(cfg.env, "eval_sets", None) or {}
    for name, env_cfg in extra.items():
        sets[name] = env_cfg
    return sets


def default_workers(env_cfg: EnvConfigBase) -> int:
    """Env worker processes: the built-in task and GPU-simulated ManiSkill (one simulator for all envs) run in
    this process; CPU simulators get the largest divisor of ``total_num_envs`` not above the CPU count."""
    if env_cfg.one_simulator_for_all_envs:
        return 1
    cpus = max(1, os.cpu_count() or 1)
    total = env_cfg.total_num_envs
    return max(d for d in range(1, min(cpus, total) + 1) if total % d == 0)


def video_count(env_cfg: EnvConfigBase) -> int:
    """Videos per eval set: ``video_cfg.num_videos`` (0: none).

    ``video_cfg.save_video`` is the training-rollout switch (saved configs always spell it out), so it does
    not decide what `rlvla eval` records."""
    return int(env_cfg.video_cfg.num_videos)


def default_out_dir(cfg: RootConfig) -> Path:
    return cfg.run_dir / "eval" / time.strftime("%Y%m%d-%H%M%S")


def evaluate_all(policy: Any, cfg: RootConfig, episodes: int | None, greedy: bool, out_dir: Path,
                 console: Console) -> Any:
    """Every eval set of ``cfg`` with a progress bar; videos under ``out_dir/videos/<set>``."""
    from rlvla_cli.evaluation.report import EvalResult
    from rlvla_cli.evaluation.runner import evaluate_policy

    result = EvalResult()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        for name, env_cfg in eval_sets_of(cfg).items():
            job = bar.add_task(f"eval set {name}", total=None)
            videos = video_count(env_cfg)
            result = result.merge(
                evaluate_policy(
                    policy,
                    env_cfg,
                    episodes,
                    greedy,
                    out_dir / "videos" / name if videos else None,
                    eval_set=name,
                    sampling_cfg=cfg.rollout.sampling,
                    num_workers=default_workers(env_cfg),
                    num_videos=videos,
                    progress=lambda done, total, job=job: bar.update(job, completed=done, total=total),
                )
            )
    return result


def run_eval(
    config: Path | None,
    checkpoint: Path | None,
    episodes: int | None,
    greedy: bool,
    out: Path | None,
    overrides: list[str],
) -> None:
    """Body of `rlvla eval` (flags in cli.py)."""
    import torch

    from rlvla_cli.errors import UserError, ensure_output_dir
    from rlvla_cli.evaluation.checkpoint_loading import load_checkpoint_policy, load_eval_config, resolve_checkpoint
    from rlvla_cli.evaluation.report import results_table

    if episodes is not None and episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {episodes}", key="--episodes")
    console = Console(soft_wrap=True)
    resolved = resolve_checkpoint(checkpoint) if checkpoint is not None else None
    cfg = load_eval_config(config, resolved, overrides)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(cfg.runner.seed)
    policy = load_checkpoint_policy(cfg, device)
    out_dir = ensure_output_dir(Path(out) if out is not None else default_out_dir(cfg),
                                "--out" if out is not None else "runner.output_dir")
    result = evaluate_all(policy, cfg, episodes, greedy, out_dir, console)
    result.meta.update(
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        checkpoint_kind=resolved.kind if resolved is not None else None,
        checkpoint_step=resolved.step if resolved is not None else None,
        config=str(config or (resolved.config_file if resolved else None) or "builtin quickstart"),
        overrides=list(overrides),
        greedy=greedy,
        episodes_per_task=episodes,
        device=device,
        model_type=cfg.actor.model.model_type,
    )
    console.print(results_table(result, title=f"evaluation of {checkpoint or cfg.actor.model.model_type}"))
    report = result.write_json(out_dir / "report.json")
    console.print(f"report: {report}", highlight=False)
    for video in result.videos:
        console.print(f"video: {video}", highlight=False)

"""`evaluate_policy`: the evaluation loop shared by `rlvla eval` and in-training evaluation.

One eval set = one env config. Its plan (plan.py) fixes the reset states; waves of ``total_num_envs`` envs run
them (episodes.py) in this process (``num_workers=1``) or in ``EnvWorkerPool`` processes; the records become
per-task rows of an :class:`EvalResult`. Videos: the first ``num_videos`` waves are recorded, each as one mp4 of
the tiled envs (``video_cfg.max_envs`` of them), by the env's recorder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.evaluation.episodes import EpisodeRecord, PoolEnv, run_wave, sampling_for
from rlvla_cli.evaluation.plan import EvalPlan, make_plan
from rlvla_cli.evaluation.report import EvalResult, TaskResult

if TYPE_CHECKING:
    from rlvla_cli.config.env import EnvConfigBase
    from rlvla_cli.config.rollout import SamplingConfig


def eval_env_config(env_cfg: EnvConfigBase, video: bool, every_n_waves: int = 1) -> Any:
    """The env config evaluation runs with: no auto-reset, no GRPO groups, videos on or off (recording one
    wave out of every ``every_n_waves``)."""
    video_cfg = env_cfg.video_cfg.model_copy(update={"save_video": video, "every_n_rollouts": every_n_waves})
    return env_cfg.model_copy(update={"auto_reset": False, "group_size": 1, "video_cfg": video_cfg})


def open_eval_env(
    env_cfg: EnvConfigBase, num_workers: int = 1, video_dir: str | None = None, tag: str = "eval", max_chunk: int = 8
) -> Any:
    """Envs for ``evaluate_policy(env=...)``, kept open between in-training evaluations: ``env_cfg`` with
    evaluation's settings (no auto-reset, no groups), in this process or ``num_workers`` worker processes."""
    return _open_env(eval_env_config(env_cfg, video_dir is not None), num_workers, video_dir, tag, max_chunk)


def _open_env(env_cfg: EnvConfigBase, num_workers: int, video_dir: str | None, tag: str, max_chunk: int) -> Any:
    if num_workers <= 1:
        from rlvla_cli.envs.registry import build_env

        return build_env(env_cfg, video_dir=video_dir, video_tag=tag)
    from rlvla_cli.envs.workers.pool import EnvWorkerPool

    return PoolEnv(EnvWorkerPool(env_cfg, num_workers=num_workers, max_chunk=max_chunk, video_dir=video_dir))


def _rows(records: list[EpisodeRecord], plan: EvalPlan, eval_set: str) -> list[TaskResult]:
    rows: dict[str, TaskResult] = {}
    for record in records:
        label = record.task if plan.per_task_rows else plan.label
        row = rows.setdefault(label, TaskResult(eval_set, label, 0))
        row.successes += int(record.success)
        row.lengths.append(record.length)
        row.returns.append(record.ret)
        row.success.append(record.success)
        row.state_ids.append(record.state_id)
    return list(rows.values())


def _new_videos(directory: Path, since: float) -> list[str]:
    """mp4 files under ``directory`` written by this evaluation (a shared directory may hold older ones)."""
    return sorted(str(p) for p in directory.glob("**/*.mp4") if p.stat().st_mtime >= since - 1.0)


def _stop_recording(env: Any) -> None:
    recorder = getattr(env, "recorder", None)
    if recorder is not None:
        recorder.close()
        env.recorder = None


def evaluate_policy(
    policy: Any,
    env_cfg: EnvConfigBase,
    num_episodes: int | None,
    greedy: bool = True,
    video_dir: str | Path | None = None,
    *,
    eval_set: str = "eval",
    sampling_cfg: SamplingConfig | None = None,
    num_workers: int = 1,
    num_videos: int = 1,
    seed: int | None = None,
    progress: Any | None = None,
    env: Any | None = None,
) -> EvalResult:
    """Run ``num_episodes`` episodes per task of ``env_cfg`` with ``policy`` and return the rows.

    num_episodes: per task (None: plan.py's default); greedy: most likely actions, else sampled with
    ``sampling_cfg`` (``rollout.sampling``, its ``temperature_eval``); video_dir: write up to ``num_videos``
    videos there (None: no videos); num_workers: env worker processes (1: in this process); seed: shifts the
    reset states (default ``env_cfg.seed``); progress: optional callable ``(episodes_done, total)``;
    env: envs from ``open_eval_env`` to reuse (left open; their videos follow their own settings).
    The policy is put in eval mode and restored afterwards.
    """
    batch = env_cfg.total_num_envs
    record_video = video_dir is not None and num_videos > 0
    # Worker processes own their recorders: there one wave out of every k is recorded so that about num_videos
    # videos appear per worker; in this process the recorder is simply closed after num_videos waves.
    waves_estimate = make_plan(env_cfg, num_episodes, seed).waves(batch)
    every_n = 1 if num_workers <= 1 or not record_video else max(1, math.ceil(len(waves_estimate) / num_videos))
    cfg = eval_env_config(env_cfg, record_video, every_n)
    if video_dir is not None:
        Path(video_dir).mkdir(parents=True, exist_ok=True)
    chunk = int(getattr(policy, "num_action_chunks", 1))
    owned = env is None
    if owned:
        env = _open_env(cfg, num_workers, str(video_dir) if record_video else None, eval_set, chunk)
    elif env.num_envs != batch:
        raise ValueError(f"env has {env.num_envs} envs but env_cfg.total_num_envs is {batch}")
    plan = make_plan(env_cfg, num_episodes, seed, task_counts=getattr(env, "counts", None))
    waves = plan.waves(batch)
    sampling = sampling_for(greedy, sampling_cfg)
    was_training = getattr(policy, "training", False)
    policy.eval()
    records: list[EpisodeRecord] = []
    start, wall_start = time.monotonic(), time.time()
    try:
        with torch.no_grad():
            for index, ids in enumerate(waves):
                if index == num_videos and num_workers <= 1 and owned:
                    _stop_recording(env)  # in-process: exactly num_videos recorded waves
                wave = run_wave(env, policy, ids, sampling, cfg.max_episode_steps)
                records.extend(wave[: plan.episodes - len(records)])
                if progress is not None:
                    progress(len(records), plan.episodes)
    finally:
        if owned:
            env.close()
        if was_training:
            policy.train()
    videos = _new_videos(Path(video_dir), since=wall_start) if record_video else []
    meta = {
        f"{eval_set}/seconds": round(time.monotonic() - start, 3),
        f"{eval_set}/env_type": getattr(env_cfg, "env_type", None),
    }
    return EvalResult(_rows(records, plan, eval_set), videos, meta)


def evaluate_sets(
    policy: Any, eval_sets: dict[str, Any], num_episodes: int | None, greedy: bool = True, **kwargs: Any
) -> EvalResult:
    """``evaluate_policy`` over several named env configs (in-distribution first, then OOD splits); each set's
    videos go to ``video_dir/<name>``."""
    video_dir = kwargs.pop("video_dir", None)
    result = EvalResult()
    for name, env_cfg in eval_sets.items():
        sub_dir = Path(video_dir) / name if video_dir is not None else None
        result = result.merge(evaluate_policy(policy, env_cfg, num_episodes, greedy, sub_dir, eval_set=name, **kwargs))
    return result

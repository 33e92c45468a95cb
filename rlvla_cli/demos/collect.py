"""Parallel collection: planner -> replay -> parquet shard, one seed per task, until N successes.

Each worker process (spawn) builds its three envs once and reuses them for every seed it is given.
A run can be interrupted and started again with the same arguments: finished shards and failed seeds
are skipped.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlvla_cli.demos import dataset
from rlvla_cli.demos.planner import check_planner_task, make_planner_env, plan_episode
from rlvla_cli.demos.replay import make_replay_envs, replay_episode

_WORKER: dict = {}


@dataclass
class CollectSettings:
    env_id: str
    num_demos: int
    out_dir: Path
    workers: int = 2
    image_size: int = 128
    first_seed: int = 0
    control_mode: str = "pd_ee_delta_pose"


def _init_worker(env_id: str, image_size: int, control_mode: str) -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["planner"] = make_planner_env(env_id)
    _WORKER["source"], _WORKER["target"] = make_replay_envs(env_id, image_size, control_mode)
    _WORKER["settings"] = (env_id, control_mode)


def _collect_one(seed: int, out_dir: str) -> dict:
    env_id, control_mode = _WORKER["settings"]
    planned = plan_episode(_WORKER["planner"], env_id, seed)
    if not planned.success:
        return {"seed": seed, "success": False, "reason": planned.reason}
    episode = replay_episode(planned, env_id, _WORKER["source"], _WORKER["target"], control_mode)
    if not episode.success:
        return {"seed": seed, "success": False, "reason": f"replay in {control_mode} did not succeed"}
    dataset.write_episode(Path(out_dir), episode)
    return {"seed": seed, "success": True, "steps": len(episode.actions), "instruction": episode.task_description}


def collect(settings: CollectSettings, on_result: Callable[[dict, int], None] | None = None) -> dict:
    """Collect until ``num_demos`` shards exist in ``out_dir``; returns a summary (also saved as meta.json)."""
    check_planner_task(settings.env_id)
    out = settings.out_dir
    (out / "data").mkdir(parents=True, exist_ok=True)
    done = dataset.completed_seeds(out)
    progress = dataset.load_progress(out)
    failed = set(progress["failed_seeds"])
    candidates = (s for s in itertools.count(settings.first_seed) if s not in done and s not in failed)
    started = time.time()
    instruction, steps = None, []
    ctx = mp.get_context("spawn")
    with ctx.Pool(
        settings.workers, _init_worker, (settings.env_id, settings.image_size, settings.control_mode)
    ) as pool:
        pending = []
        while len(done) < settings.num_demos:
            in_flight_cap = settings.num_demos + settings.workers  # a few extra seeds cover planner failures
            while len(pending) < 2 * settings.workers and len(done) + len(pending) < in_flight_cap:
                pending.append(pool.apply_async(_collect_one, (next(candidates), str(out))))
            ready = [p for p in pending if p.ready()]
            if not ready:
                time.sleep(0.05)
                continue
            for job in ready:
                pending.remove(job)
                result = job.get()
                if result["success"] and len(done) < settings.num_demos:
                    done.add(result["seed"])
                    instruction, steps = result["instruction"], steps + [result["steps"]]
                elif not result["success"]:
                    failed.add(result["seed"])
                    dataset.save_json(out / "progress.json", {"failed_seeds": sorted(failed)})
                if on_result:
                    on_result(result, len(done))
        pool.terminate()
    return _finish(settings, done, failed, instruction, steps, time.time() - started)


def _finish(settings, done, failed, instruction, steps, seconds) -> dict:
    out = settings.out_dir
    # a resumed run may finish with more shards than asked (a racing extra success): keep them all
    shards = dataset.completed_seeds(out)
    unnorm_key = f"maniskill_{settings.env_id.split('-')[0].lower()}"
    stats = dataset.write_statistics(out, unnorm_key)
    meta = {
        "env_id": settings.env_id,
        "control_mode": settings.control_mode,
        "sim_backend": "cpu",
        "image_size": settings.image_size,
        "num_episodes": len(shards),
        "seeds": sorted(shards),
        "failed_seeds": sorted(failed),
        "task_description": instruction,
        "unnorm_key": unnorm_key,
        "num_transitions": stats[unnorm_key]["num_transitions"],
        "seconds_this_run": round(seconds, 1),
        "mean_steps_this_run": round(sum(steps) / len(steps), 1) if steps else None,
    }
    dataset.save_json(out / "meta.json", meta)
    return meta

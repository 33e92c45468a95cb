"""A scripted expert for the built-in tabletop task and `rlvla collect-demos --env builtin`.

The task is ours, so the expert reads the target's position from the simulator: it moves the gripper straight
at the named object (full speed, ``max_delta`` per step) and closes the gripper on the step whose move ends
inside the success radius. ``action_noise`` adds Gaussian noise of that standard deviation to the two move
dimensions (action units, [-1, 1]) and, with probability ``action_noise / 2``, flips the gripper command, so
noisy demonstrations wander, close early or miss and re-try, like human teleoperation. Only episodes that
succeed are written (as the ManiSkill collector does); the dataset format is ``demos/dataset.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlvla_cli.demos import dataset
from rlvla_cli.demos.replay import ReplayedEpisode

UNNORM_KEY = "builtin"
CLOSE_FRACTION = 0.7  # close once the planned position is this deep inside the success radius


@dataclass
class BuiltinCollectSettings:
    num_demos: int
    out_dir: Path
    image_size: int = 64
    first_seed: int = 0
    action_noise: float = 0.0
    max_episode_steps: int = 24
    num_objects: int = 3
    batch: int = 32  # scenes stepped together


def expert_actions(
    gripper_xy: torch.Tensor, target_xy: torch.Tensor, max_delta: float, success_radius: float,
    action_noise: float = 0.0, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """gripper / target positions ``[B, 2]`` -> actions float32 ``[B, 7]`` (move xy, zeros, gripper -1 closes)."""
    offset = target_xy - gripper_xy
    move = (offset / max_delta).clamp(-1.0, 1.0)
    landing = torch.linalg.vector_norm(offset - move * max_delta, dim=-1)
    close = landing < CLOSE_FRACTION * success_radius
    if action_noise > 0:
        move = (move + action_noise * torch.randn(move.shape, generator=generator)).clamp(-1.0, 1.0)
        flip = torch.rand(close.shape, generator=generator) < action_noise / 2
        close = close ^ flip
    actions = torch.zeros(gripper_xy.shape[0], 7)
    actions[:, :2] = move
    actions[:, 6] = torch.where(close, -1.0, 1.0)
    return actions


def _make_env(settings: BuiltinCollectSettings, num_envs: int):
    from rlvla_cli.config.env import BuiltinInitParams
    from rlvla_cli.envs.builtin import BuiltinTabletopEnv
    from rlvla_cli.envs.episode import EpisodeSettings

    params = BuiltinInitParams(image_size=settings.image_size, num_objects=settings.num_objects,
                               split="in_distribution")
    episode = EpisodeSettings(max_episode_steps=settings.max_episode_steps, auto_reset=False)
    return BuiltinTabletopEnv(num_envs, params, episode), params


def run_episodes(
    settings: BuiltinCollectSettings, seeds: list[int], generator: torch.Generator
) -> list[ReplayedEpisode]:
    """Run the expert on the scenes of ``seeds`` (reset state ids) together; one episode per seed."""
    env, params = _make_env(settings, len(seeds))
    obs, _ = env.reset(reset_state_ids=torch.tensor(seeds))
    frames: list[list] = [[] for _ in seeds]
    active = torch.ones(len(seeds), dtype=torch.bool)
    success = torch.zeros(len(seeds), dtype=torch.bool)
    instructions = list(obs["task_descriptions"])
    for _ in range(settings.max_episode_steps):
        actions = expert_actions(env.gripper_xy, env.target_xy(), params.max_delta, params.success_radius,
                                 settings.action_noise, generator)
        for i in torch.nonzero(active).flatten().tolist():
            frames[i].append((obs["main_images"][i].numpy(), obs["states"][i].numpy(), actions[i].numpy()))
        step = env.chunk_step(actions.unsqueeze(1))
        success |= step.infos["success"].any(-1) & active
        active &= ~(step.terminations | step.truncations).any(-1)
        obs = step.obs
        if not active.any():
            break
    episodes = []
    for i, seed in enumerate(seeds):
        images, states, acts = (np.stack(column) for column in zip(*frames[i], strict=True))
        episodes.append(ReplayedEpisode(seed, images.astype(np.uint8), None, states.astype(np.float32),
                                        acts.astype(np.float32), instructions[i], bool(success[i])))
    return episodes


def collect_builtin(settings: BuiltinCollectSettings, on_result: Callable[[dict, int], None] | None = None) -> dict:
    """Write successful expert episodes to ``out_dir`` until ``num_demos`` exist (resumable: seeds already
    written or recorded as failed are skipped); returns the summary also saved as meta.json."""
    from datasets import disable_progress_bars

    disable_progress_bars()  # one bar per shard written otherwise
    out = settings.out_dir
    (out / "data").mkdir(parents=True, exist_ok=True)
    done = dataset.completed_seeds(out)
    failed = set(dataset.load_progress(out)["failed_seeds"])
    generator = torch.Generator().manual_seed(settings.first_seed)
    started, next_seed, attempts, failures = time.time(), settings.first_seed, 0, 0
    while len(done) < settings.num_demos:
        seeds = []
        while len(seeds) < min(settings.batch, settings.num_demos - len(done)):
            if next_seed not in done and next_seed not in failed:
                seeds.append(next_seed)
            next_seed += 1
        for episode in run_episodes(settings, seeds, generator):
            attempts += 1
            result = {"seed": episode.seed, "success": episode.success, "steps": len(episode.actions)}
            if episode.success and len(done) < settings.num_demos:
                dataset.write_episode(out, episode)
                done.add(episode.seed)
            elif not episode.success:
                failed.add(episode.seed)
                failures += 1
                result["reason"] = f"the expert did not succeed within {settings.max_episode_steps} steps"
            if on_result:
                on_result(result, len(done))
        dataset.save_json(out / "progress.json", {"failed_seeds": sorted(failed)})
    return _finish(settings, failed, attempts, failures, time.time() - started)


def _finish(settings: BuiltinCollectSettings, failed: set, attempts: int, failures: int, seconds: float) -> dict:
    out = settings.out_dir
    shards = dataset.completed_seeds(out)
    stats = dataset.write_statistics(out, UNNORM_KEY)
    meta = {
        "env_id": "builtin",
        "split": "in_distribution",
        "action_noise": settings.action_noise,
        "max_episode_steps": settings.max_episode_steps,
        "num_objects": settings.num_objects,
        "image_size": settings.image_size,
        "num_episodes": len(shards),
        "seeds": sorted(shards),
        "failed_seeds": sorted(failed),
        "expert_success_rate_this_run": round(1 - failures / attempts, 3) if attempts else None,
        "task_description": None,
        "unnorm_key": UNNORM_KEY,
        "num_transitions": stats[UNNORM_KEY]["num_transitions"],
        "seconds_this_run": round(seconds, 1),
    }
    dataset.save_json(out / "meta.json", meta)
    return meta

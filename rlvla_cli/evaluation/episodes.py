"""Run evaluation episodes in waves: every env of a wave starts one episode from a given reset state and the
wave ends when all of them have finished.

Waves (not auto-reset) keep the estimate unbiased: with auto-reset, short episodes (often the successful ones)
would be over-represented among the first N finished. The env runs with ``auto_reset: False``; an env whose
episode ended stays frozen (its further actions are ignored) until the next wave's reset.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.envs.base import ChunkStepResult, Obs
from rlvla_cli.models.base import SamplingParams

if TYPE_CHECKING:
    from rlvla_cli.config.rollout import SamplingConfig


@dataclass
class EpisodeRecord:
    """One finished evaluation episode."""

    state_id: int
    task: str
    success: bool
    length: int
    ret: float


class PoolEnv:
    """Stage 0 of an ``EnvWorkerPool`` seen as a VecEnv (``reset`` / ``chunk_step`` / ``close``)."""

    def __init__(self, pool: Any):
        self.pool = pool
        self.num_envs = pool.num_envs

    def reset(self, seed: int | None = None, reset_state_ids: torch.Tensor | None = None) -> tuple[Obs, dict]:
        return self.pool.reset(seed=seed, reset_state_ids=reset_state_ids)[0], {}

    def chunk_step(self, actions: torch.Tensor) -> ChunkStepResult:
        return self.pool.step(0, actions)

    def close(self) -> None:
        self.pool.close()


def sampling_for(greedy: bool, sampling_cfg: SamplingConfig | None = None) -> SamplingParams:
    """Greedy: the most likely action. Sampled: ``rollout.sampling`` with its eval temperature (RLinf's
    ``temperature_eval``), or temperature 1 without a config."""
    if greedy:
        return SamplingParams(do_sample=False)
    if sampling_cfg is None:
        return SamplingParams(do_sample=True)
    return dataclasses.replace(SamplingParams.for_mode(sampling_cfg, "eval"), do_sample=True)


def run_wave(
    env: Any, policy: Any, state_ids: list[int], sampling: SamplingParams, max_episode_steps: int
) -> list[EpisodeRecord]:
    """One episode per env from ``state_ids`` [B]; returns the B records in env order.

    The policy acts on the batch every chunk (``predict(obs, mode="eval")``, actions ``[B, C, A]`` moved to
    the CPU); finished envs are frozen by the env. Raises RuntimeError if an episode outlives
    ``max_episode_steps`` (an env that ignores its own truncation).
    """
    obs, _ = env.reset(reset_state_ids=torch.tensor(state_ids, dtype=torch.int64))
    tasks = list(obs["task_descriptions"])
    batch = len(state_ids)
    done = torch.zeros(batch, dtype=torch.bool)
    records: list[EpisodeRecord | None] = [None] * batch
    chunk = max(1, int(getattr(policy, "num_action_chunks", 1)))
    for _ in range(math.ceil(max_episode_steps / chunk) + 1):
        if bool(done.all()):
            break
        actions = policy.predict(obs, mode="eval", sampling=sampling).actions
        result = env.chunk_step(actions.detach().float().cpu())
        finished = result.infos["final_mask"].bool() & ~done
        if bool(finished.any()):
            episode = result.infos["episode"]
            for i in torch.nonzero(finished).flatten().tolist():
                records[i] = EpisodeRecord(
                    state_id=int(state_ids[i]),
                    task=tasks[i],
                    success=bool(episode["success_once"][i] > 0.5),
                    length=int(round(float(episode["episode_len"][i]))),
                    ret=float(episode["return"][i]),
                )
            done |= finished
        obs = result.obs
    if not bool(done.all()):
        raise RuntimeError(f"{int((~done).sum())} evaluation episodes did not end within {max_episode_steps} steps")
    return [r for r in records if r is not None]

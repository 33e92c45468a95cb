"""Rollout: policy inference over the env worker pool's stages, building the trainer's RolloutBatch.

With ``pipeline_stage_num = S`` the pool holds S env groups; after receiving group s the policy predicts for
it and sends its next chunk at once, so while group s steps the simulator the policy infers for the next
group. Episodes that end record V(final observation) for the bootstrap (``algorithm.bootstrap_type`` picks which
ends use it: truncations by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.algorithms.levels import mask_after_first_done
from rlvla_cli.envs.base import ChunkStepResult
from rlvla_cli.envs.episode import EPISODE_METRICS
from rlvla_cli.envs.workers.pool import EnvPool
from rlvla_cli.models.base import PolicyOutput, SamplingParams
from rlvla_cli.runtime.perf import Stopwatch

if TYPE_CHECKING:
    from rlvla_cli.config.rollout import SamplingConfig


@dataclass
class _StageRecord:
    """Per chunk step of one stage: tensors batch-first ``[B_s, ...]``, stacked to ``[T, B_s, ...]`` later."""

    forward_inputs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    logprobs: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    rewards: list[torch.Tensor] = field(default_factory=list)
    terminations: list[torch.Tensor] = field(default_factory=list)
    truncations: list[torch.Tensor] = field(default_factory=list)
    bootstrap: list[torch.Tensor] = field(default_factory=list)


@dataclass
class RolloutResult:
    """One rollout epoch: the batch ``[T, B, ...]``, finished-episode metrics and counters."""

    batch: RolloutBatch
    episodes: dict[str, torch.Tensor]  # EPISODE_METRICS -> float [num finished episodes]
    env_steps: int
    seconds: float


def episode_metrics(episodes: dict[str, torch.Tensor], prefix: str = "env") -> dict[str, float]:
    """Means over finished episodes as ``env/success_once`` etc. (empty when no episode finished)."""
    if not episodes or episodes["success_once"].numel() == 0:
        return {}
    return {f"{prefix}/{name}": float(episodes[name].float().mean()) for name in EPISODE_METRICS if name in episodes}


def to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` detached on the CPU (what the rollout keeps of every output)."""
    return tensor.detach().to("cpu")


class RolloutWorker:
    """Drives ``pool`` (an ``EnvPool``: ``stages``, ``reset``, ``send_actions``, ``recv``)
    with ``policy`` on ``device``.

    steps_per_rollout: T chunk steps per rollout epoch; auto_reset: the env config's ``auto_reset`` (without it
    steps after an env's first episode end are masked out of the loss); needs_values: record values (PPO).
    should_stop: polled between chunk steps; returning True aborts the rollout (``collect`` returns None).
    """

    def __init__(self, policy: torch.nn.Module, device: str | torch.device, pool: EnvPool, steps_per_rollout: int,
                 sampling_cfg: SamplingConfig | None = None, auto_reset: bool = True, needs_values: bool = True,
                 should_stop: Any = None):
        self.policy, self.device, self.pool = policy, torch.device(device), pool
        self.steps_per_rollout, self.auto_reset, self.needs_values = steps_per_rollout, auto_reset, needs_values
        self.sampling = SamplingParams.for_mode(sampling_cfg, "train")
        self.should_stop = should_stop or (lambda: False)

    def _predict(self, obs: dict[str, Any]) -> PolicyOutput:
        return self.policy.predict(obs, mode="train", sampling=self.sampling)

    def _final_values(self, result: ChunkStepResult, width: int) -> torch.Tensor:
        """V(final obs) ``[B_s, V]`` where the episode ended in this chunk, 0 elsewhere (``algorithm.bootstrap_type``
        decides in GAE whether terminations use it)."""
        truncated = (result.truncations | result.terminations).any(-1) & result.infos["final_mask"]
        out = torch.zeros(result.rewards.shape[0], width)
        if self.needs_values and bool(truncated.any()):
            values = to_cpu(self.policy.get_values(result.infos["final_observation"])).float()
            out[truncated] = values[truncated]
        return out

    @torch.no_grad()
    def collect(self, seed: int) -> RolloutResult | None:
        """Reset the pool with ``seed`` and run T chunk steps on every stage (overlapped); None when
        ``should_stop`` asked to stop (the in-flight chunks are drained, so the pool stays usable)."""
        with Stopwatch() as watch:
            result = self._collect(seed)
        if result is not None:
            result.seconds = watch.seconds
        return result

    def _collect(self, seed: int) -> RolloutResult | None:
        self.policy.eval()
        stages = self.pool.stages
        records = [_StageRecord() for _ in range(stages)]
        episodes: dict[str, list[torch.Tensor]] = {name: [] for name in EPISODE_METRICS}
        obs = self.pool.reset(seed=seed)
        pending = []
        for s in range(stages):
            pending.append(self._predict(obs[s]))
            self.pool.send_actions(s, to_cpu(pending[s].actions))
        env_steps = 0
        last_obs: list[Any] = [None] * stages
        for t in range(self.steps_per_rollout):
            for s in range(stages):
                if self.should_stop():
                    self._drain(s, stages)
                    return None
                result = self.pool.recv(s)  # its tensors are copies: the workers may overwrite shared memory now
                out = pending[s]
                if t + 1 < self.steps_per_rollout:  # next chunk first, so this stage simulates while we record
                    pending[s] = self._predict(result.obs)
                    self.pool.send_actions(s, to_cpu(pending[s].actions))
                else:
                    last_obs[s] = result.obs
                env_steps += result.rewards.numel()
                self._record(records[s], out, result)  # incl. values of truncated final observations
                if result.infos.get("episode") is not None:
                    mask = result.infos["final_mask"]
                    for name in EPISODE_METRICS:
                        episodes[name].append(result.infos["episode"][name][mask].float())
        batch = self._assemble(records, last_obs)
        merged = {k: torch.cat(v) if v else torch.zeros(0) for k, v in episodes.items()}
        return RolloutResult(batch=batch, episodes=merged, env_steps=env_steps, seconds=0.0)

    def _drain(self, first_stage: int, stages: int) -> None:
        """Receive the chunks still in flight so the pool can be reused or closed cleanly."""
        for s in range(first_stage, stages):
            try:
                self.pool.recv(s)
            except Exception:  # noqa: BLE001 - best effort while stopping
                return

    def _record(self, rec: _StageRecord, out: PolicyOutput, result: ChunkStepResult) -> None:
        rec.forward_inputs.append({k: to_cpu(v) for k, v in out.forward_inputs.items()})
        rec.logprobs.append(to_cpu(out.logprobs).float())
        width = out.values.shape[-1] if out.values is not None else 1
        if out.values is not None:
            rec.values.append(to_cpu(out.values).float())
        rec.rewards.append(result.rewards.float())
        rec.terminations.append(result.terminations.bool())
        rec.truncations.append(result.truncations.bool())
        rec.bootstrap.append(self._final_values(result, width))

    def _assemble(self, records: list[_StageRecord], last_obs: list[Any]) -> RolloutBatch:
        """Stack each stage over time and concatenate stages along B (the pool's global env order)."""

        def stack(name: str) -> torch.Tensor | None:
            parts = [torch.stack(getattr(r, name)) for r in records if getattr(r, name)]
            return torch.cat(parts, dim=1) if parts else None

        keys = records[0].forward_inputs[0].keys()
        forward_inputs = {
            k: torch.cat([torch.stack([step[k] for step in r.forward_inputs]) for r in records], dim=1) for k in keys
        }
        has_values = self.needs_values and bool(records[0].values)
        last_values = None
        if has_values:
            last_values = torch.cat([to_cpu(self.policy.get_values(o)).float() for o in last_obs], dim=0)
        terminations, truncations = stack("terminations"), stack("truncations")
        loss_mask = torch.ones(terminations.shape[:2], dtype=torch.bool)
        if not self.auto_reset:
            loss_mask = mask_after_first_done(terminations | truncations)
        batch = RolloutBatch(
            forward_inputs=forward_inputs, old_logprobs=stack("logprobs"), rewards=stack("rewards"),
            terminations=terminations, truncations=truncations, loss_mask=loss_mask,
            old_values=stack("values") if has_values else None,
            bootstrap_values=stack("bootstrap") if has_values else None, last_values=last_values,
        )
        return batch.validate()


"""Episode bookkeeping shared by every adapter: chunked stepping, auto-reset, truncation, metrics, GRPO groups.

An adapter subclasses :class:`EpisodeVecEnv` and implements three simulator primitives:

- ``_sim_reset(env_ids, state_ids)``: put envs ``env_ids`` int64 ``[K]`` into the initial states ``state_ids``;
- ``_sim_step(actions, active) -> SimStep``: advance the envs where ``active`` bool ``[B]`` by one action
  ``[B, A]``; envs that are not active must keep their state (their results are ignored);
- ``_sim_obs() -> Obs``: the current observation of all B envs (rows of inactive envs show their last state),
  as fresh tensors the caller may keep (never views of buffers the adapter writes into later).

Semantics (RLinf's keys):

- An episode ends by termination (the task's own, e.g. success) or truncation (``max_episode_steps``).
  With ``ignore_terminations`` nothing terminates: episodes run to truncation and ``success_once`` records
  whether success happened at any step.
- Inside a chunk, an env whose episode ended skips the rest of the chunk (reward 0, flags False there).
  The end step carries the termination/truncation flag at its own index ``[B, C]``.
- ``auto_reset``: envs that ended are reset after the chunk; ``obs`` is the new episode's first observation
  and ``infos["final_observation"]`` (rows where ``infos["final_mask"]``) the last one of the old episode.
  Without it, ended envs stay frozen until ``reset()`` is called.
- Reset states: ``group_size`` consecutive envs share one reset state id (GRPO). The k-th episode of every
  env in a group uses the same id, so groups stay aligned under auto-reset. Ids are a pure function of
  (seed, rollout index, global group index, k); ``use_fixed_reset_state_ids`` drops the rollout index and
  enumerates states in order (evaluation over a fixed set).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch

from rlvla_cli.envs.base import ChunkStepResult, Obs, ObsSpec, VecEnv

EPISODE_METRICS = ("success_once", "success_at_end", "return", "episode_len", "reward")
_MASK64 = (1 << 64) - 1


@dataclass
class SimStep:
    """One simulator step for all B envs: reward float32 ``[B]``, terminated / success bool ``[B]``."""

    reward: torch.Tensor
    terminated: torch.Tensor
    success: torch.Tensor


@dataclass
class EpisodeSettings:
    """The env-config keys the bookkeeping needs (a subset of ``EnvConfigBase``)."""

    max_episode_steps: int
    auto_reset: bool = True
    ignore_terminations: bool = False
    group_size: int = 1
    seed: int = 0
    use_fixed_reset_state_ids: bool = False
    use_rel_reward: bool = False
    reward_coef: float = 1.0
    env_offset: int = 0  # index of this env batch's first env among all workers' envs
    total_envs: int | None = None  # envs over all workers (None: just this batch)

    @classmethod
    def from_config(cls, env_cfg, env_offset: int = 0, seed: int | None = None) -> EpisodeSettings:
        return cls(
            max_episode_steps=env_cfg.max_episode_steps,
            auto_reset=env_cfg.auto_reset,
            ignore_terminations=env_cfg.ignore_terminations,
            group_size=env_cfg.group_size,
            seed=env_cfg.seed if seed is None else seed,
            use_fixed_reset_state_ids=env_cfg.use_fixed_reset_state_ids,
            use_rel_reward=env_cfg.use_rel_reward,
            reward_coef=env_cfg.reward_coef,
            env_offset=env_offset,
            total_envs=env_cfg.total_num_envs,
        )


def splitmix64(value: int) -> int:
    """A well-mixed 64-bit hash of an integer (Steele et al., SplitMix64), used for stateless id draws."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def reset_state_id(
    seed: int, rollout: int, group: int, episode: int, num_states: int, fixed: bool, num_groups: int
) -> int:
    """The reset state id of the ``episode``-th episode of global group ``group``.

    fixed: enumerate ``group + episode * num_groups`` (mod ``num_states``), identical every rollout;
    otherwise a hash of (seed, rollout, group, episode).
    """
    if fixed:
        return (seed + group + episode * num_groups) % num_states
    key = splitmix64(seed) ^ splitmix64((rollout << 40) ^ (group << 20) ^ episode ^ 0x5F3759DF)
    return splitmix64(key) % num_states


class EpisodeVecEnv(VecEnv):
    """A :class:`VecEnv` built from per-step simulator primitives (see the module docstring)."""

    num_reset_states: int = 2**31 - 1

    def __init__(self, num_envs: int, action_dim: int, obs_spec: ObsSpec, settings: EpisodeSettings):
        if num_envs % settings.group_size:
            raise ValueError(f"num_envs ({num_envs}) must be a multiple of group_size ({settings.group_size})")
        self.num_envs, self.action_dim, self.obs_spec, self.settings = num_envs, action_dim, obs_spec, settings
        self.recorder = None  # optional VideoRecorder (envs/video.py)
        self._rollout = 0
        self._seed = settings.seed
        self._episode_count = torch.zeros(num_envs, dtype=torch.int64)
        self._active = torch.zeros(num_envs, dtype=torch.bool)
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64)
        self._return = torch.zeros(num_envs)
        self._success_once = torch.zeros(num_envs, dtype=torch.bool)
        self._success_last = torch.zeros(num_envs, dtype=torch.bool)
        self._prev_reward = torch.zeros(num_envs)
        self.state_ids = torch.zeros(num_envs, dtype=torch.int64)
        self._explicit_ids: torch.Tensor | None = None

    # ----------------------------------------------------------------------------------- primitives
    @abstractmethod
    def _sim_reset(self, env_ids: torch.Tensor, state_ids: torch.Tensor) -> None:
        """Reset envs ``env_ids`` int64 ``[K]`` into states ``state_ids`` int64 ``[K]``."""

    @abstractmethod
    def _sim_step(self, actions: torch.Tensor, active: torch.Tensor) -> SimStep:
        """Step the active envs with ``actions`` float32 ``[B, A]``."""

    @abstractmethod
    def _sim_obs(self) -> Obs:
        """Current observation of all B envs."""

    # ----------------------------------------------------------------------------------- reset ids
    def _group_of(self, env_ids: torch.Tensor) -> list[int]:
        return [(self.settings.env_offset + int(i)) // self.settings.group_size for i in env_ids]

    def _draw_state_ids(self, env_ids: torch.Tensor) -> torch.Tensor:
        """Next reset state id for each env in ``env_ids`` [K] (shared by the envs of a group)."""
        if self._explicit_ids is not None:
            return self._explicit_ids[env_ids]
        s = self.settings
        total = max(s.total_envs or 0, s.env_offset + self.num_envs)
        num_groups = max(1, total // s.group_size)
        rollout = 0 if s.use_fixed_reset_state_ids else self._rollout
        ids = [
            reset_state_id(self._seed, rollout, g, int(self._episode_count[i]), self.num_reset_states,
                           s.use_fixed_reset_state_ids, num_groups)
            for g, i in zip(self._group_of(env_ids), env_ids, strict=True)
        ]
        return torch.tensor(ids, dtype=torch.int64)

    def _reset_envs(self, env_ids: torch.Tensor) -> None:
        state_ids = self._draw_state_ids(env_ids)
        self.state_ids[env_ids] = state_ids
        self._sim_reset(env_ids, state_ids)
        self._episode_count[env_ids] += 1
        self._active[env_ids] = True
        self._elapsed[env_ids] = 0
        self._return[env_ids] = 0.0
        self._success_once[env_ids] = False
        self._success_last[env_ids] = False
        self._prev_reward[env_ids] = 0.0

    def reset(self, seed: int | None = None, reset_state_ids: torch.Tensor | None = None) -> tuple[Obs, dict]:
        """Reset all envs; a new ``seed`` restarts the id sequence, ``reset_state_ids`` [B] fixes the states."""
        if seed is not None:
            self._seed, self._rollout = seed, 0
        if reset_state_ids is not None:
            ids = torch.as_tensor(reset_state_ids, dtype=torch.int64).reshape(-1)
            if ids.numel() != self.num_envs:
                raise ValueError(f"reset_state_ids has {ids.numel()} entries; expected num_envs={self.num_envs}")
            self._explicit_ids = ids % self.num_reset_states
        else:
            self._explicit_ids = None
        self._episode_count.zero_()
        self._reset_envs(torch.arange(self.num_envs))
        self._rollout += 1
        obs = self._sim_obs()
        if self.recorder is not None:
            self.recorder.on_reset(obs)
        return obs, {"reset_state_ids": self.state_ids.clone()}

    # ----------------------------------------------------------------------------------- stepping
    def chunk_step(self, actions: torch.Tensor) -> ChunkStepResult:
        """Run ``actions`` float32 ``[B, C, A]``; see the module docstring for the episode semantics."""
        actions = torch.as_tensor(actions, dtype=torch.float32)
        if actions.dim() != 3 or actions.shape[0] != self.num_envs:
            raise ValueError(f"actions must be [B={self.num_envs}, chunk, A]; got {tuple(actions.shape)}")
        batch, chunk = actions.shape[:2]
        rewards = torch.zeros(batch, chunk)
        terms = torch.zeros(batch, chunk, dtype=torch.bool)
        truncs = torch.zeros(batch, chunk, dtype=torch.bool)
        successes = torch.zeros(batch, chunk, dtype=torch.bool)
        ended_any = torch.zeros(batch, dtype=torch.bool)
        for c in range(chunk):
            active = self._active.clone()
            if not active.any():
                break
            result = self._sim_step(actions[:, c, : self.action_dim], active)
            rewards[:, c], terms[:, c], truncs[:, c], successes[:, c] = self._account(result, active)
            ended = terms[:, c] | truncs[:, c]
            self._active &= ~ended
            ended_any |= ended
            if self.recorder is not None:
                self.recorder.on_step(self._sim_obs, rewards[:, c], successes[:, c])
        return self._finish_chunk(rewards, terms, truncs, successes, ended_any)

    def _account(self, result: SimStep, active: torch.Tensor):
        """Rewards and flags ``[B]`` of one step; updates the running episode statistics."""
        s = self.settings
        raw = result.reward.float() * s.reward_coef
        reward = raw - self._prev_reward if s.use_rel_reward else raw
        self._prev_reward = torch.where(active, raw, self._prev_reward)
        reward = torch.where(active, reward, torch.zeros_like(reward))
        success = result.success.bool() & active
        self._elapsed += active.long()
        self._return += reward
        self._success_once |= success
        self._success_last = torch.where(active, success, self._success_last)
        term = result.terminated.bool() & active & (not s.ignore_terminations)
        trunc = active & (self._elapsed >= s.max_episode_steps) & ~term
        return reward, term, trunc, success

    def episode_metrics(self) -> dict[str, torch.Tensor]:
        """Metrics float32 ``[B]`` of each env's current (or just ended) episode."""
        length = self._elapsed.float()
        return {
            "success_once": self._success_once.float(),
            "success_at_end": self._success_last.float(),
            "return": self._return.clone(),
            "episode_len": length,
            "reward": self._return / length.clamp(min=1.0),
        }

    def _finish_chunk(self, rewards, terms, truncs, successes, ended_any) -> ChunkStepResult:
        infos: dict = {"success": successes, "final_mask": ended_any}
        obs = self._sim_obs()
        if ended_any.any():
            infos["episode"] = self.episode_metrics()
            if self.settings.auto_reset:
                infos["final_observation"] = obs  # fresh tensors (the _sim_obs contract): no copy needed
                self._reset_envs(torch.nonzero(ended_any).flatten())
                obs = self._sim_obs()
            else:
                infos["final_observation"] = obs
        if self.recorder is not None:
            self.recorder.on_chunk_end(ended_any)
        return ChunkStepResult(obs=obs, rewards=rewards, terminations=terms, truncations=truncs, infos=infos)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None


"""In-training evaluation: greedy episodes on ``env.eval`` in this process, reported as ``eval/*``.

Every env runs exactly one episode from a fixed set of reset states (``use_fixed_reset_state_ids``), so the
numbers of two evaluations are comparable. (``rlvla eval`` runs the full evaluation with reports and videos.)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rlvla_cli.envs.episode import EPISODE_METRICS
from rlvla_cli.models.base import SamplingParams


class InLoopEvaluator:
    """Holds the eval envs between evaluations (built once, reset with the same seed each time)."""

    def __init__(self, env_cfg: Any, sampling_cfg: Any = None, greedy: bool = True):
        from rlvla_cli.envs.registry import build_env

        self.env_cfg = env_cfg
        self.env = build_env(env_cfg)
        self.sampling = SamplingParams(do_sample=False) if greedy else SamplingParams.for_mode(sampling_cfg, "eval")

    @torch.no_grad()
    def evaluate(self, policy: torch.nn.Module) -> dict[str, float]:
        """One episode per env; returns ``eval/success_once`` etc. (means over the envs' first episodes)."""
        policy.eval()
        obs, _ = self.env.reset(seed=self.env_cfg.seed)
        num_envs = self.env.num_envs
        done = torch.zeros(num_envs, dtype=torch.bool)
        values = {name: torch.zeros(num_envs) for name in EPISODE_METRICS}
        chunk = getattr(policy, "num_action_chunks", 1)
        max_chunks = math.ceil(self.env_cfg.max_episode_steps / chunk) + 1
        for _ in range(max_chunks):
            actions = policy.predict(obs, mode="eval", sampling=self.sampling).actions.float().cpu()
            result = self.env.chunk_step(actions)
            finished = result.infos.get("final_mask", torch.zeros(num_envs, dtype=torch.bool)) & ~done
            if bool(finished.any()):
                for name in EPISODE_METRICS:
                    values[name][finished] = result.infos["episode"][name][finished].float()
                done |= finished
            if bool(done.all()):
                break
            obs = result.obs
        if not bool(done.any()):
            return {}
        return {f"eval/{name}": float(values[name][done].mean()) for name in EPISODE_METRICS}

    def close(self) -> None:
        self.env.close()

"""In-training evaluation through the evaluation package's runner (``rlvla_cli.evaluation``), reported as
``eval/*`` (success_once, episode_len, return), with the eval envs kept open between evaluations.

Every evaluation runs the same fixed reset states (one wave of ``env.eval.total_num_envs`` episodes by
default), so two evaluations of a run are comparable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rlvla_cli.config.env import EnvConfigBase
    from rlvla_cli.config.rollout import SamplingConfig


class InLoopEvaluator:
    """``evaluate(policy) -> {"eval/success_once": ...}``; ``close()`` releases the envs.

    env_cfg: ``env.eval``; sampling_cfg: ``rollout.sampling`` (used when ``greedy`` is False, with
    ``temperature_eval``); max_chunk: the policy's ``num_action_chunks``; episodes: per evaluation (None: one
    wave of ``total_num_envs``).
    """

    def __init__(self, env_cfg: EnvConfigBase, sampling_cfg: SamplingConfig | None = None, greedy: bool = True,
                 max_chunk: int = 8, episodes: int | None = None):
        from rlvla_cli.evaluation import open_eval_env

        self.env_cfg, self.sampling_cfg, self.greedy, self.episodes = env_cfg, sampling_cfg, greedy, episodes
        self.env = open_eval_env(env_cfg, num_workers=1, max_chunk=max_chunk)

    @torch.no_grad()
    def evaluate(self, policy: torch.nn.Module) -> dict[str, float]:
        from rlvla_cli.evaluation import evaluate_policy

        result = evaluate_policy(policy, self.env_cfg, self.episodes, greedy=self.greedy,
                                 sampling_cfg=self.sampling_cfg, env=self.env)
        return result.metrics("eval")

    def close(self) -> None:
        self.env.close()

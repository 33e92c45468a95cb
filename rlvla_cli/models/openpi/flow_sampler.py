"""The denoising chain of a flow policy as an RL policy: sampling that records the chain, and exact rescoring.

``sample_chain`` runs K denoising steps from noise, stochastic at the steps named by ``denoise_inds`` and
deterministic (Euler) elsewhere, and returns the chain x_1 (noise), ..., x_0 (action) together with the
log-probs of the stochastic transitions. ``score_chain`` recomputes those log-probs (with gradients) from the
stored chain, calling the model only at the scored steps, so rollout and training agree exactly.

Which steps are stochastic / scored (RLinf's pi-RL):
- single step (``joint_logprob`` off): one random step per sample, ``denoise_inds [B, 1]``;
- joint: every step, ``denoise_inds [B, K]``, plus the log-density of the initial noise under N(0, I);
- greedy (eval mode): none, ``denoise_inds`` filled with -1 and log-probs 0.

Shapes: B batch, K steps, H action horizon, D model action width, S scored columns, W feature width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from rlvla_cli.models.openpi.flow_matching import (
    flow_noise_std,
    flow_sde_transition,
    flow_timesteps,
    gaussian_entropy,
    gaussian_log_prob,
    ode_transition,
)


@dataclass
class StepPrediction:
    """What the model gives for one denoising step.

    velocity ``[B, H, D]``; noise_raw ``[B, H, D]`` (flow_noise head output, else None);
    value_feature ``[B, W]`` (pooled expert output for the value head, else None).
    """

    velocity: torch.Tensor
    noise_raw: torch.Tensor | None = None
    value_feature: torch.Tensor | None = None


StepFn = Callable[[torch.Tensor, torch.Tensor], StepPrediction]
"""(x_t ``[B, H, D]``, step index ``[B]`` int64) -> StepPrediction."""


@dataclass(frozen=True)
class FlowSettings:
    """Sampling settings (from ``OpenPIModelConfig``)."""

    num_steps: int
    noise_method: Literal["flow_sde", "flow_noise"]
    noise_level: float = 0.5
    min_std: float = 0.08
    max_std: float = 0.16
    joint_logprob: bool = False


@dataclass
class ChainResult:
    """chain ``[B, K + 1, H, D]`` (x at t = 1, ..., 0); logprobs / entropy ``[B, S, H, D]`` per scored column
    (joint: S = K + 1, the first column the initial noise); value_feature ``[B, W]`` averaged over the scored
    steps (all steps when greedy), or None."""

    chain: torch.Tensor | None
    logprobs: torch.Tensor
    entropy: torch.Tensor
    value_feature: torch.Tensor | None


def choose_denoise_inds(
    batch: int, settings: FlowSettings, greedy: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Stochastic step indices int64 ``[B, S]``: all steps (joint), one random step (single) or -1 (greedy)."""
    k = settings.num_steps
    if greedy:
        return torch.full((batch, 1), -1, dtype=torch.long)
    if settings.joint_logprob:
        return torch.arange(k, dtype=torch.long).expand(batch, k).clone()
    return torch.randint(0, k, (batch, 1), generator=generator, dtype=torch.long)


def transition(
    settings: FlowSettings, x_t: torch.Tensor, step: torch.Tensor, pred: StepPrediction, stochastic: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std ``[B, H, D]`` of x_{t - delta} given x_t at step ``[B]``; std 0 where not ``stochastic [B]``."""
    grid = flow_timesteps(settings.num_steps, device=x_t.device)
    safe_step = step.clamp(min=0)
    t = grid[safe_step].view(-1, 1, 1).to(x_t.dtype)
    delta = (grid[safe_step] - grid[safe_step + 1]).view(-1, 1, 1).to(x_t.dtype)
    v = pred.velocity.to(x_t.dtype)
    ode_mean = ode_transition(x_t, v, t, delta)
    if settings.noise_method == "flow_sde":
        mean, std = flow_sde_transition(x_t, v, t, delta, settings.noise_level)
    elif settings.noise_method == "flow_noise":
        if pred.noise_raw is None:
            raise ValueError("flow_noise needs the noise head output (StepPrediction.noise_raw)")
        mean, std = ode_mean, flow_noise_std(pred.noise_raw.to(x_t.dtype), settings.min_std, settings.max_std)
    else:
        raise ValueError(f"unknown noise_method {settings.noise_method!r}; valid: flow_sde, flow_noise")
    on = stochastic.view(-1, 1, 1)
    return torch.where(on, mean, ode_mean), torch.where(on, std, torch.zeros_like(std))


def _initial_terms(x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-density and entropy of the initial noise under N(0, I), per element."""
    logp = gaussian_log_prob(x1, torch.zeros_like(x1), torch.ones_like(x1))
    return logp, torch.full_like(x1, 0.5 * (math.log(2 * math.pi) + 1.0))


def sample_chain(
    settings: FlowSettings,
    step_fn: StepFn,
    noise: torch.Tensor,
    denoise_inds: torch.Tensor,
    generator: torch.Generator | None = None,
) -> ChainResult:
    """Denoise ``noise [B, H, D]`` in K steps, stochastic at ``denoise_inds [B, S]``; record the chain."""
    batch, k = noise.shape[0], settings.num_steps
    x = noise
    chain = [x]
    greedy = bool((denoise_inds < 0).all())
    columns = denoise_inds.shape[1]
    logps = torch.zeros(batch, columns, *noise.shape[1:], dtype=noise.dtype, device=noise.device)
    ents = torch.zeros_like(logps)
    features: list[torch.Tensor] = []
    for step in range(k):
        step_vec = torch.full((batch,), step, dtype=torch.long, device=noise.device)
        is_step = denoise_inds.to(noise.device) == step  # [B, S]
        stochastic = is_step.any(dim=1)
        pred = step_fn(x, step_vec)
        mean, std = transition(settings, x, step_vec, pred, stochastic)
        eps_device = generator.device if generator is not None else mean.device
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=eps_device).to(mean.device)
        x_next = mean + std * eps
        hit = is_step[:, :, None, None]
        logps = torch.where(hit, gaussian_log_prob(x_next, mean, std)[:, None], logps)
        ents = torch.where(hit, gaussian_entropy(std)[:, None], ents)
        if pred.value_feature is not None:
            weight = (stochastic | greedy).to(pred.value_feature.dtype)[:, None]
            features.append(pred.value_feature * weight)
        x = x_next
        chain.append(x)
    if settings.joint_logprob and not greedy:
        init_logp, init_ent = _initial_terms(noise)
        logps, ents = torch.cat([init_logp[:, None], logps], 1), torch.cat([init_ent[:, None], ents], 1)
    feature = None
    if features:
        per_sample = k if greedy else columns
        feature = torch.stack(features, 0).sum(0) / per_sample
    return ChainResult(torch.stack(chain, 1), logps, ents, feature)


def score_chain(
    settings: FlowSettings, step_fn: StepFn, chain: torch.Tensor, denoise_inds: torch.Tensor
) -> ChainResult:
    """Log-probs / entropies ``[B, S(+1), H, D]`` of the recorded ``chain [B, K + 1, H, D]`` at ``denoise_inds``.

    Calls ``step_fn`` once per scored column (once for single-step, K times for joint). Columns with index -1
    (greedy samples) score 0.
    """
    rows = torch.arange(chain.shape[0], device=chain.device)
    logps, ents, features = [], [], []
    for column in range(denoise_inds.shape[1]):
        step = denoise_inds[:, column].to(chain.device)
        valid = step >= 0
        safe = step.clamp(min=0)
        x_t, x_next = chain[rows, safe], chain[rows, safe + 1]
        pred = step_fn(x_t, safe)
        mean, std = transition(settings, x_t, safe, pred, valid)
        logps.append(gaussian_log_prob(x_next, mean, std))
        ents.append(gaussian_entropy(std))
        if pred.value_feature is not None:
            features.append(pred.value_feature)
    logp, ent = torch.stack(logps, 1), torch.stack(ents, 1)
    if settings.joint_logprob and bool((denoise_inds >= 0).all()):
        init_logp, init_ent = _initial_terms(chain[:, 0])
        logp, ent = torch.cat([init_logp[:, None], logp], 1), torch.cat([init_ent[:, None], ent], 1)
    feature = torch.stack(features, 0).mean(0) if features else None
    return ChainResult(None, logp, ent, feature)

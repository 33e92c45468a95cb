"""Flow-matching transition densities for RL on flow policies (pi0 / pi0.5).

Convention (Black et al. 2024, "pi0: A Vision-Language-Action Flow Model", and rectified flow, Liu et al. 2022,
"Flow Straight and Fast"): t = 1 is pure noise, t = 0 is data, x_t = t * noise + (1 - t) * action, and the model
predicts the velocity v = noise - action. Denoising integrates from t = 1 down to t = 0 in K steps of size
delta = 1 / K. From (x_t, v) the two end points are x0 = x_t - t v (data) and x1 = x_t + (1 - t) v (noise).

Two ways to make a denoising step a Gaussian policy whose log-probability PPO can use (Chen et al. 2025,
"pi-RL: Online RL Fine-tuning for Flow-based Vision-Language-Action Models", RLinf; the SDE form follows
Liu et al. 2025, "Flow-GRPO"):

- ``flow_sde``: the ODE is turned into an SDE with the same marginals, sigma_t = a sqrt(t / (1 - t));
  mean = x0 (1 - (t - delta)) + x1 (t - delta - sigma_t^2 delta / (2 t)), std = sqrt(delta) sigma_t.
- ``flow_noise``: the mean is the deterministic Euler step, the std comes from a small learned noise head
  whose log-variance is squashed into [log(min_std^2), log(max_std^2)].

Shapes: any broadcastable tensors; in the policy x_t, v are ``[B, H, D]`` (batch, action horizon, model
action width) and t, delta are ``[B, 1, 1]``. Every function is pure and differentiable.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = [
    "chain_reduce",
    "euler_step",
    "flow_endpoints",
    "flow_noise_std",
    "flow_sde_sigma",
    "flow_sde_transition",
    "flow_timesteps",
    "gaussian_entropy",
    "gaussian_log_prob",
    "ode_transition",
]

_LOG_2PI = math.log(2.0 * math.pi)


def flow_timesteps(num_steps: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The denoising grid ``[K + 1]``: 1, 1 - 1/K, ..., 1/K, 0 (float32). Step k goes from t[k] to t[k + 1]."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return torch.linspace(1.0, 0.0, num_steps + 1, device=device, dtype=torch.float32)


def flow_endpoints(x_t: torch.Tensor, v_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted data and noise end points ``(x0, x1) = (x_t - t v, x_t + (1 - t) v)``, each shaped like x_t."""
    return x_t - t * v_t, x_t + (1.0 - t) * v_t


def euler_step(x_t: torch.Tensor, v_t: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """Deterministic Euler step of the probability-flow ODE from t to t - delta: ``x_t - delta v``."""
    return x_t - delta * v_t


def flow_sde_sigma(t: torch.Tensor, delta: torch.Tensor, noise_level: float | torch.Tensor) -> torch.Tensor:
    """sigma_t = noise_level * sqrt(t / (1 - t)), with 1 - t clamped to >= delta so t = 1 stays finite.

    On the uniform grid the clamp only acts at t = 1, where it uses 1 - t[1] = delta (RLinf's choice).
    """
    return noise_level * torch.sqrt(t / torch.clamp(1.0 - t, min=delta))


def flow_sde_transition(
    x_t: torch.Tensor,
    v_t: torch.Tensor,
    t: torch.Tensor,
    delta: torch.Tensor,
    noise_level: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the flow-SDE transition x_t -> x_{t - delta} (pi-RL, eq. for flow-SDE).

    mean = x0 (1 - (t - delta)) + x1 (t - delta - sigma_t^2 delta / (2 t)); std = sqrt(delta) sigma_t.
    sigma_t^2 / t is evaluated as noise_level^2 / (1 - t) (same clamp), so t -> 0 stays finite.
    Returns ``(mean, std)`` broadcast to x_t's shape. noise_level -> 0 gives the Euler step and std 0.
    """
    x0, x1 = flow_endpoints(x_t, v_t, t)
    denom = torch.clamp(1.0 - t, min=delta)
    sigma = noise_level * torch.sqrt(t / denom)
    sigma_sq_over_t = (noise_level**2) / denom
    mean = x0 * (1.0 - (t - delta)) + x1 * (t - delta - sigma_sq_over_t * delta / 2.0)
    std = torch.sqrt(delta) * sigma
    return mean, std.expand_as(mean)


def ode_transition(x_t: torch.Tensor, v_t: torch.Tensor, t: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The ODE (Euler) mean written through the end points: x0 (1 - (t - delta)) + x1 (t - delta) = x_t - delta v."""
    x0, x1 = flow_endpoints(x_t, v_t, t)
    return x0 * (1.0 - (t - delta)) + x1 * (t - delta)


def flow_noise_std(raw: torch.Tensor, min_std: float, max_std: float) -> torch.Tensor:
    """Std of the flow-noise transition from the noise head's raw output (ReinFlow / pi-RL).

    logvar = log(min_std^2) + (log(max_std^2) - log(min_std^2)) (tanh(raw) + 1) / 2; std = exp(logvar / 2),
    so std lies in [min_std, max_std]. Shape of ``raw``.
    """
    lo, hi = 2.0 * math.log(min_std), 2.0 * math.log(max_std)
    logvar = lo + (hi - lo) * (torch.tanh(raw) + 1.0) / 2.0
    return torch.exp(0.5 * logvar)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-element log N(x; mean, std^2); elements with std == 0 (deterministic steps) score 0.

    log p = -log std - log(2 pi) / 2 - (x - mean)^2 / (2 std^2). Broadcast shape of the inputs.
    """
    zero = std == 0
    safe_std = torch.where(zero, torch.ones_like(std), std)
    logp = -torch.log(safe_std) - 0.5 * _LOG_2PI - 0.5 * ((x - mean) / safe_std) ** 2
    return torch.where(zero, torch.zeros_like(logp), logp)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """Per-element differential entropy of N(., std^2): log(std) + log(2 pi e) / 2; 0 where std == 0."""
    zero = std == 0
    safe_std = torch.where(zero, torch.ones_like(std), std)
    ent = torch.log(safe_std) + 0.5 * (_LOG_2PI + 1.0)
    return torch.where(zero, torch.zeros_like(ent), ent)


def chain_reduce(step_values: torch.Tensor, reduction: Literal["mean", "sum"], dim: int = 1) -> torch.Tensor:
    """Combine per-step log-probs / entropies ``[B, S, ...]`` over the chain dim -> ``[B, ...]``.

    ``sum`` is the exact joint log-density of the chain; ``mean`` (RLinf) keeps the PPO ratio on one step's scale.
    """
    if reduction == "sum":
        return step_values.sum(dim=dim)
    if reduction == "mean":
        return step_values.mean(dim=dim)
    raise ValueError(f"unknown chain reduction {reduction!r}; valid: 'mean', 'sum'")

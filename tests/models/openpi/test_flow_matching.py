"""Flow-matching transition math: SDE vs Normal densities, Euler limit, shapes and finiteness."""

from __future__ import annotations

import math

import pytest
import torch

from rlvla_cli.models.openpi.flow_matching import (
    chain_reduce,
    euler_step,
    flow_endpoints,
    flow_noise_std,
    flow_sde_sigma,
    flow_sde_transition,
    flow_timesteps,
    gaussian_entropy,
    gaussian_log_prob,
    ode_transition,
)


def _state(shape=(3, 4, 5), seed=0):
    gen = torch.Generator().manual_seed(seed)
    first = torch.randn(shape, generator=gen, dtype=torch.float64)
    return first, torch.randn(shape, generator=gen, dtype=torch.float64)


def test_timesteps_grid():
    assert torch.allclose(flow_timesteps(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    with pytest.raises(ValueError):
        flow_timesteps(0)


def test_endpoints_reconstruct_interpolation():
    # x_t = t * noise + (1 - t) * action and v = noise - action give back action and noise exactly.
    action, noise = _state()
    t = torch.tensor(0.3, dtype=torch.float64)
    x_t = t * noise + (1 - t) * action
    x0, x1 = flow_endpoints(x_t, noise - action, t)
    assert torch.allclose(x0, action) and torch.allclose(x1, noise)


def test_sde_log_prob_equals_torch_normal():
    x_t, v = _state()
    t = torch.tensor(0.75, dtype=torch.float64)
    delta = torch.tensor(0.25, dtype=torch.float64)
    mean, std = flow_sde_transition(x_t, v, t, delta, 0.5)
    # std = sqrt(0.25) * 0.5 * sqrt(0.75 / 0.25) = 0.5 * 0.5 * sqrt(3)
    assert torch.allclose(std, torch.full_like(std, 0.25 * math.sqrt(3.0)))
    sample = mean + std * torch.randn_like(mean)
    expected = torch.distributions.Normal(mean, std).log_prob(sample)
    assert torch.allclose(gaussian_log_prob(sample, mean, std), expected, atol=1e-12)
    assert torch.allclose(gaussian_entropy(std), torch.distributions.Normal(mean, std).entropy(), atol=1e-12)


def test_sde_mean_hand_computed():
    # Scalars: x_t = 1, v = 2, t = 0.5, delta = 0.25, a = 0.5.
    # x0 = 1 - 0.5*2 = 0, x1 = 1 + 0.5*2 = 2; 1 - t = 0.5 -> sigma^2 = 0.25 * 0.5/0.5 = 0.25.
    # mean = 0 * (1 - 0.25) + 2 * (0.25 - 0.25 * 0.25 / (2 * 0.5)) = 2 * (0.25 - 0.0625) = 0.375
    # std = sqrt(0.25) * 0.5 = 0.25
    one = torch.tensor(1.0, dtype=torch.float64)
    mean, std = flow_sde_transition(one, 2 * one, 0.5 * one, 0.25 * one, 0.5)
    assert mean.item() == pytest.approx(0.375)
    assert std.item() == pytest.approx(0.25)


@pytest.mark.parametrize("t_value", [1.0, 0.75, 0.5, 0.25])
def test_sde_mean_tends_to_euler(t_value):
    x_t, v = _state(seed=1)
    t = torch.tensor(t_value, dtype=torch.float64)
    delta = torch.tensor(0.25, dtype=torch.float64)
    euler = euler_step(x_t, v, delta)
    assert torch.allclose(ode_transition(x_t, v, t, delta), euler, atol=1e-12)
    gaps = []
    for level in (1e-1, 1e-2, 1e-3, 0.0):
        mean, std = flow_sde_transition(x_t, v, t, delta, level)
        gaps.append((mean - euler).abs().max().item())
        assert std.max().item() <= level * math.sqrt(0.25) * math.sqrt(t_value / 0.25) + 1e-12
    assert gaps[0] > gaps[1] > gaps[2] and gaps[3] < 1e-12


def test_finite_near_one_and_zero():
    x_t, v = _state(shape=(2, 3), seed=2)
    delta = torch.tensor(1e-3, dtype=torch.float64)
    for t_value in (1.0, 1.0 - 1e-9, 1e-9, 1e-3):
        t = torch.tensor(t_value, dtype=torch.float64)
        mean, std = flow_sde_transition(x_t, v, t, delta, 0.5)
        assert torch.isfinite(mean).all() and torch.isfinite(std).all()
        sample = mean + std * torch.randn_like(mean)
        assert torch.isfinite(gaussian_log_prob(sample, mean, std)).all()
    # At t = 1 the clamp uses 1 - t = delta (RLinf's grid choice): sigma = a sqrt(1 / delta).
    assert flow_sde_sigma(torch.tensor(1.0), torch.tensor(0.25), 0.5).item() == pytest.approx(1.0)


def test_shapes_broadcast_per_sample_time():
    x_t = torch.randn(4, 10, 32)
    v = torch.randn(4, 10, 32)
    t = torch.tensor([1.0, 0.8, 0.6, 0.4]).view(4, 1, 1)
    delta = torch.full((4, 1, 1), 0.2)
    mean, std = flow_sde_transition(x_t, v, t, delta, 0.5)
    assert mean.shape == std.shape == (4, 10, 32)
    assert gaussian_log_prob(x_t, mean, std).shape == (4, 10, 32)


def test_zero_std_scores_zero():
    x = torch.randn(3)
    assert torch.equal(gaussian_log_prob(x, x + 1, torch.zeros(3)), torch.zeros(3))
    assert torch.equal(gaussian_entropy(torch.zeros(3)), torch.zeros(3))


def test_flow_noise_std_in_range_and_differentiable():
    raw = torch.linspace(-20, 20, 41, requires_grad=True)
    std = flow_noise_std(raw, 0.08, 0.16)
    assert std.min().item() == pytest.approx(0.08, rel=1e-5) and std.max().item() == pytest.approx(0.16, rel=1e-5)
    # raw = 0 -> midpoint of the log-variance range: std = sqrt(0.08 * 0.16)
    assert std[20].item() == pytest.approx(math.sqrt(0.08 * 0.16), rel=1e-6)
    std.sum().backward()
    assert raw.grad is not None and raw.grad[20] > 0


def test_chain_reduce():
    steps = torch.tensor([[1.0, 2.0, 3.0]])
    assert chain_reduce(steps, "sum").item() == 6.0
    assert chain_reduce(steps, "mean").item() == 2.0
    with pytest.raises(ValueError):
        chain_reduce(steps, "max")  # type: ignore[arg-type]

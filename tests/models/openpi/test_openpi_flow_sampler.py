"""The denoising chain on a known velocity field: greedy reaches the data, rescoring equals sampling."""

from __future__ import annotations

import math

import pytest
import torch

from rlvla_cli.models.openpi.flow_matching import flow_timesteps, gaussian_log_prob
from rlvla_cli.models.openpi.flow_sampler import (
    FlowSettings,
    StepPrediction,
    choose_denoise_inds,
    sample_chain,
    score_chain,
)

TARGET = torch.tensor([[0.3, -0.7], [1.5, 0.2]]).expand(3, 2, 2)  # [B=3, H=2, D=2]


def point_mass_step(settings: FlowSettings):
    """Exact velocity of a flow to a point mass at TARGET: x_t = t n + (1 - t) a -> v = (x_t - a) / t."""
    grid = flow_timesteps(settings.num_steps)

    def step(x_t, index):
        t = grid[index].view(-1, 1, 1)
        raw = torch.full_like(x_t, 0.5) if settings.noise_method == "flow_noise" else None
        return StepPrediction((x_t - TARGET) / t, raw, x_t.mean(dim=(1, 2))[:, None])

    return step


def test_greedy_chain_reaches_the_data_exactly():
    settings = FlowSettings(num_steps=5, noise_method="flow_sde")
    inds = choose_denoise_inds(3, settings, greedy=True)
    result = sample_chain(settings, point_mass_step(settings), torch.randn(3, 2, 2), inds)
    torch.testing.assert_close(result.chain[:, -1], TARGET, atol=1e-6, rtol=0)
    assert torch.equal(result.logprobs, torch.zeros_like(result.logprobs))


@pytest.mark.parametrize("method", ["flow_sde", "flow_noise"])
@pytest.mark.parametrize("joint", [False, True])
def test_rescoring_equals_sampling(method, joint):
    settings = FlowSettings(num_steps=4, noise_method=method, joint_logprob=joint)
    gen = torch.Generator().manual_seed(0)
    inds = choose_denoise_inds(3, settings, greedy=False, generator=gen)
    step = point_mass_step(settings)
    sampled = sample_chain(settings, step, torch.randn(3, 2, 2, generator=gen), inds, generator=gen)
    scored = score_chain(settings, step, sampled.chain, inds)
    columns = 5 if joint else 1
    assert sampled.logprobs.shape == scored.logprobs.shape == (3, columns, 2, 2)
    torch.testing.assert_close(scored.logprobs, sampled.logprobs, atol=1e-6, rtol=0)
    torch.testing.assert_close(scored.entropy, sampled.entropy, atol=1e-6, rtol=0)
    torch.testing.assert_close(scored.value_feature, sampled.value_feature, atol=1e-6, rtol=0)
    if joint:  # first column: the initial noise under N(0, I)
        x1 = sampled.chain[:, 0]
        torch.testing.assert_close(scored.logprobs[:, 0], -0.5 * x1**2 - 0.5 * math.log(2 * math.pi))


def test_single_step_chain_is_deterministic_off_its_step():
    settings = FlowSettings(num_steps=4, noise_method="flow_sde")
    inds = torch.tensor([[0], [2], [3]])
    step = point_mass_step(settings)
    result = sample_chain(settings, step, torch.randn(3, 2, 2), inds)
    grid = flow_timesteps(4)
    for row in range(3):
        for k in range(4):
            x_t, x_next = result.chain[row, k], result.chain[row, k + 1]
            euler = x_t - (grid[k] - grid[k + 1]) * (x_t - TARGET[row]) / grid[k]
            assert torch.allclose(x_next, euler, atol=1e-6) == (k != int(inds[row, 0])), (row, k)


def test_flow_noise_std_comes_from_the_head():
    settings = FlowSettings(num_steps=2, noise_method="flow_noise", min_std=0.08, max_std=0.16)
    inds = torch.zeros(3, 1, dtype=torch.long)
    result = sample_chain(settings, point_mass_step(settings), torch.randn(3, 2, 2), inds)
    # raw 0.5 -> logvar = log(0.08^2) + (log(0.16^2) - log(0.08^2)) (tanh(0.5) + 1) / 2
    std = math.exp(0.5 * (2 * math.log(0.08) + (2 * math.log(0.16) - 2 * math.log(0.08)) * (math.tanh(0.5) + 1) / 2))
    mean = result.chain[:, 0] - 0.5 * (result.chain[:, 0] - TARGET) / 1.0
    expected = gaussian_log_prob(result.chain[:, 1], mean, torch.full_like(mean, std))
    torch.testing.assert_close(result.logprobs[:, 0], expected, atol=1e-6, rtol=0)

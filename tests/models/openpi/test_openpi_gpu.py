"""Full-size pi0 / pi0.5 (random weights, bf16) on a CUDA GPU: rollout vs recompute, memory, latency.

Run on the device machine: ``pytest -m gpu tests/models/openpi/test_openpi_gpu.py -s`` (prints a timing table).
"""

from __future__ import annotations

import time

import pytest
import torch
from openpi_helpers import make_obs

from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.models.registry import build_policy

pytestmark = pytest.mark.gpu


def _obs(batch: int) -> dict:
    obs = make_obs(batch)
    big = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8)
    obs["main_images"], obs["wrist_images"] = big, big.flip(1)
    return obs


def _timed(fn, repeats: int = 3) -> tuple[float, object]:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, result


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
def test_full_size_bf16_rollout_and_training_step(pi05):
    cfg = OpenPIModelConfig(
        size="full", precision="bf16", pi05=pi05, action_horizon=10, num_action_chunks=5, add_value_head=True,
        noise_method="flow_noise" if pi05 else "flow_sde",
    )
    torch.manual_seed(0)
    start = time.perf_counter()
    policy = build_policy(cfg, device="cuda")
    build_s = time.perf_counter() - start
    billions = sum(p.numel() for p in policy.parameters()) / 1e9
    rows = [f"{'pi05' if pi05 else 'pi0'} build {build_s:.1f}s, params {billions:.2f}B"]
    for batch in (8, 64):
        obs = _obs(batch)
        latency, out = _timed(lambda obs=obs: policy.predict(obs, mode="train"))
        rows.append(f"  predict batch {batch}: {latency * 1e3:.0f} ms ({batch / latency:.0f} actions chunks/s)")
        assert torch.isfinite(out.logprobs).all() and torch.isfinite(out.actions).all()
    obs = _obs(8)
    out = policy.predict(obs, mode="train")
    torch.cuda.reset_peak_memory_stats()

    def train_step():
        ev = policy.evaluate(out.forward_inputs)
        (ev.logprobs.mean() + ev.values.mean()).backward()
        return ev

    step_s, ev = _timed(train_step)
    peak = torch.cuda.max_memory_allocated() / 2**30
    rows.append(f"  evaluate+backward micro-batch 8: {step_s * 1e3:.0f} ms, peak {peak:.1f} GiB")
    print("\n" + "\n".join(rows))
    torch.testing.assert_close(ev.logprobs, out.logprobs, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(ev.values, out.values, atol=1e-3, rtol=1e-3)

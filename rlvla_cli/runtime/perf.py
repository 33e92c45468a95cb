"""Throughput metrics: ``perf/actor_mfu`` (model FLOPs utilisation of the trainer) and its inputs.

MFU = achieved training FLOP/s / peak FLOP/s of the trainer GPUs. Training FLOPs per sample are
``policy.training_flops_per_sample()`` when the policy provides it, else the usual dense estimate
6 x parameters (forward 2N + backward 4N per token, one token per sample). Peak numbers are the dense bf16
tensor-core figures of the data sheets; unknown GPUs and CPUs report no MFU.
"""

from __future__ import annotations

import time

import torch


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``: the wall time of the block (perf_counter)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start

# Dense bf16 peak FLOP/s (no sparsity), by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "H800": 989e12,
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362e12,
    "L40": 181e12,
    "A6000": 155e12,
    "4090": 165e12,
    "V100": 125e12,
}


def peak_flops(device: str | torch.device) -> float | None:
    """Peak dense bf16 FLOP/s of ``device``; None on a CPU or an unknown GPU."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_BF16_FLOPS.items() if key in name), None)


def training_flops_per_sample(policy: torch.nn.Module) -> float:
    """FLOPs of one forward + backward of one sample (see the module docstring)."""
    custom = getattr(policy, "training_flops_per_sample", None)
    if callable(custom):
        return float(custom())
    return 6.0 * sum(p.numel() for p in policy.parameters())


def actor_mfu(policy: torch.nn.Module, samples: int, seconds: float, device: str | torch.device,
              num_ranks: int = 1) -> float | None:
    """MFU of a training phase that processed ``samples`` (sample passes over all ranks, update epochs
    included) in ``seconds`` on ``num_ranks`` GPUs like ``device``; None when the peak is unknown."""
    peak = peak_flops(device)
    if peak is None or seconds <= 0:
        return None
    return training_flops_per_sample(policy) * samples / seconds / (peak * num_ranks)

"""``actor.micro_batch_size: auto``: the planner picks the micro-batch (and whether to checkpoint activations).

Candidates are the divisors of the per-rank global batch (``global_batch_size / data-parallel size``: the update
splits each global batch into equal micro-batches). Each (micro, checkpointing) pair whose predicted peak on every
GPU (the larger of the rollout and the training phase, offload as configured) stays under ``MARGIN`` of the GPU
is scored by a throughput model fitted to measurements, and the fastest wins:

    seconds per sample  ~  (1 + LAUNCH_SAMPLES / micro) x (CHECKPOINT_COST if checkpointing)

``LAUNCH_SAMPLES`` = 6: the OpenVLA-OFT LoRA update is host-bound (kernel launches per micro-batch do not grow
with the micro-batch): bench_train on an H200, 32 samples, no checkpointing, 1.66 / 1.28 / 1.11 s at micro
8 / 16 / 32 (docs/measurements/bench_train_oft_h200_micro_sweep.json) fit ``a (1 + c / m)`` with c = 6 within
2%. ``CHECKPOINT_COST`` = 1.33: recomputing the forward adds one forward (1/3 of forward + backward FLOPs) and
its launches. Without a known GPU size (CPU mode, ``plan-gpus`` without ``--gpu-mem``) the choice is the largest
divisor up to ``CPU_MICRO``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from rlvla_cli.placement import memory as mem

MARGIN = 0.85  # predicted peak / GPU memory: allocator fragmentation and the CUDA caching are not modelled
LAUNCH_SAMPLES = 6.0
CHECKPOINT_COST = 1.33
CPU_MICRO = 16


@dataclass(frozen=True)
class MicroChoice:
    """The planner's pick: micro-batch, checkpointing, predicted peak bytes (None without a GPU size), why."""

    micro_batch_size: int
    checkpointing: bool
    peak_bytes: int | None
    reason: str

    def describe(self) -> str:
        ckpt = "on" if self.checkpointing else "off"
        return f"actor.micro_batch_size auto -> {self.micro_batch_size} (gradient checkpointing {ckpt}): {self.reason}"


def divisors_desc(n: int) -> list[int]:
    """Divisors of ``n`` from the largest down."""
    return [d for d in range(n, 0, -1) if n % d == 0]


def relative_seconds_per_sample(micro: int, checkpointing: bool) -> float:
    """The throughput model of the module docstring (arbitrary unit; lower is faster)."""
    return (1.0 + LAUNCH_SAMPLES / micro) * (CHECKPOINT_COST if checkpointing else 1.0)


def choose_micro_batch(
    per_rank_global: int, cap: int | None, peak_for: Callable[[int, bool], int], allow_checkpointing: bool = True,
) -> MicroChoice:
    """Pick (micro, checkpointing) for a per-rank global batch of ``per_rank_global`` samples on GPUs of ``cap``
    bytes; ``peak_for(micro, checkpointing)`` is the predicted peak bytes of the fullest GPU. When nothing fits,
    micro 1 with checkpointing (if allowed) is returned and the plan's memory verdict refuses it as usual."""
    candidates = divisors_desc(max(1, per_rank_global))
    if not cap:
        micro = next(d for d in candidates if d <= CPU_MICRO)
        return MicroChoice(micro, False, None, f"no GPU size known: the largest divisor of {per_rank_global} "
                                               f"up to {CPU_MICRO}")
    limit = int(MARGIN * cap)
    fits = []
    for ckpt in (False, True) if allow_checkpointing else (False,):
        for micro in candidates:
            peak = peak_for(micro, ckpt)
            if peak <= limit:
                fits.append((relative_seconds_per_sample(micro, ckpt), micro, ckpt, peak))
                break  # the largest fitting micro is the fastest for this checkpointing setting
    if not fits:
        ckpt = allow_checkpointing
        return MicroChoice(1, ckpt, peak_for(1, ckpt), f"nothing fits {MARGIN:.0%} of {mem.format_bytes(cap)}")
    _, micro, ckpt, peak = min(fits)
    return MicroChoice(micro, ckpt, peak, f"predicted peak {mem.format_bytes(peak)} of {mem.format_bytes(cap)} "
                                          f"(largest that fits {MARGIN:.0%}, fastest by the launch-bound model)")


def settings_peak(placement, profile, settings, estimate_fn) -> Callable[[int, bool], int]:
    """``peak_for`` over the planner's estimate (``estimate_fn(placement, profile, settings)`` -> GpuMemory list)
    with the micro-batch and checkpointing varied."""

    def peak_for(micro: int, checkpointing: bool) -> int:
        variant = dataclasses.replace(settings, micro_batch_size=micro, checkpointing=checkpointing)
        return max((g.peak for g in estimate_fn(placement, profile, variant)), default=0)

    return peak_for

"""``actor.micro_batch_size: auto`` (placement/auto_micro.py): the planner picks a divisor of the per-rank global
batch that fits the GPU with a margin, and whether to checkpoint; the OFT quickstart on 24 / 48 / 80 / 141 GB."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvla_cli.config.loader import load_config
from rlvla_cli.placement.auto_micro import MARGIN, choose_micro_batch, divisors_desc, relative_seconds_per_sample
from rlvla_cli.placement.planner import plan, resolve_micro_batch
from rlvla_cli.placement.resolve import resolve_placement

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GIB = 1024**3
GB = 10**9


def _quickstart(*overrides: str):
    return load_config(CONFIGS / "maniskill_ppo_openvlaoft_quickstart.yaml", ["actor.micro_batch_size=auto",
                                                                                 *overrides])


def test_divisors_and_throughput_model():
    assert divisors_desc(40) == [40, 20, 10, 8, 5, 4, 2, 1]
    # fitted to bench_train on an H200 (1.66 / 1.28 / 1.11 s per 32 samples at micro 8 / 16 / 32): ratios within 3%
    assert relative_seconds_per_sample(8, False) / relative_seconds_per_sample(32, False) == pytest.approx(
        1.66 / 1.11, rel=0.03)
    assert relative_seconds_per_sample(16, False) / relative_seconds_per_sample(32, False) == pytest.approx(
        1.276 / 1.111, rel=0.03)
    assert relative_seconds_per_sample(8, True) > relative_seconds_per_sample(8, False)


def test_choice_is_the_fastest_that_fits():
    cap = 100 * GIB
    base, per_sample = 20 * GIB, 4 * GIB

    def peak(micro: int, ckpt: bool) -> int:
        return base + micro * (per_sample // 4 if ckpt else per_sample)

    choice = choose_micro_batch(40, cap, peak)
    # no checkpointing: 20 + 4 m <= 85 -> m <= 16 -> divisor 10; checkpointing: 20 + m <= 85 -> 40 (one pass).
    # model: (1 + 6/10) = 1.60 vs 1.33 x (1 + 6/40) = 1.53 -> checkpointing at 40 wins
    assert (choice.micro_batch_size, choice.checkpointing) == (40, True)
    assert choice.peak_bytes <= MARGIN * cap
    assert choose_micro_batch(40, cap, peak, allow_checkpointing=False).micro_batch_size == 10
    assert choose_micro_batch(40, None, peak).micro_batch_size == 10  # no GPU size: largest divisor <= 16
    nothing = choose_micro_batch(40, 10 * GIB, peak)
    assert nothing.micro_batch_size == 1 and "nothing fits" in nothing.reason


@pytest.mark.parametrize("gpu_gb", [24, 48, 80, 141])
def test_oft_quickstart_auto_fits_every_gpu_size(gpu_gb):
    cfg = _quickstart()
    result = plan(cfg, 1, 1, gpu_gb * GB)
    assert result.ok, [r.reason for r in result.refusals]
    choice = result.micro_choice
    assert choice is not None and cfg.actor.micro_batch_size == choice.micro_batch_size  # written into the config
    assert 40 % choice.micro_batch_size == 0
    assert cfg.actor.model.gradient_checkpointing == choice.checkpointing
    peak = max(g.peak for g in result.gpus)
    assert peak <= gpu_gb * GB
    if gpu_gb >= 48:  # 24 GB: even micro 1 with checkpointing and offload is above the margin (20.8 GB); it fits
        assert peak <= MARGIN * gpu_gb * GB
    else:
        assert (choice.micro_batch_size, choice.checkpointing) == (1, True)
    assert "actor.micro_batch_size auto ->" in choice.describe()


def test_bigger_gpus_get_bigger_micro_batches_without_offload():
    chosen = {}
    for gpu_gb in (24, 80, 141):
        cfg = _quickstart("actor.enable_offload=false", "rollout.enable_offload=false") if gpu_gb > 24 \
            else _quickstart()
        chosen[gpu_gb] = plan(cfg, 1, 1, gpu_gb * GB).micro_choice
    speed = {gb: relative_seconds_per_sample(c.micro_batch_size, c.checkpointing) for gb, c in chosen.items()}
    assert speed[24] >= speed[80] >= speed[141]  # a bigger GPU never gets a slower choice
    assert chosen[141].micro_batch_size >= 8 and not chosen[141].checkpointing  # vs the shipped micro 1 + ckpt


def test_cpu_mode_and_fixed_numbers():
    cfg = _quickstart()
    placement = resolve_placement(cfg.cluster.component_placement, 1, 1, cpu_mode=True)
    choice = resolve_micro_batch(cfg, placement, None)
    assert choice.micro_batch_size == 10 and cfg.actor.micro_batch_size == 10
    fixed = load_config(CONFIGS / "maniskill_ppo_openvlaoft_quickstart.yaml", ["actor.micro_batch_size=4"])
    assert resolve_micro_batch(fixed, placement, 80 * GB) is None and fixed.actor.micro_batch_size == 4

"""The DeepSpeed trainer: config, lr schedule, real updates with the algorithm core, NaN skips, save/load."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tiny_policy import TinyPolicy, synthetic_batch

from rlvla_cli.algorithms import compute_advantages
from rlvla_cli.config.actor import ActorConfig
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.errors import ConfigError
from rlvla_cli.runtime.trainer import (
    Trainer,
    bf16_autocast,
    build_optimizer,
    deepspeed_config,
    effective_zero_stage,
    lr_factor,
)


def actor_cfg(stage: int = 0, **optim) -> ActorConfig:
    return ActorConfig.model_validate({
        "micro_batch_size": 4, "global_batch_size": 16,
        "optim": {"lr": 1e-2, "value_lr": 1e-2, "clip_grad": 1.0, **optim},
        "deepspeed": {"zero_stage": stage, "bf16": True},
        "model": {"model_type": "small"},
    })


def test_lr_factor_schedules():
    assert lr_factor(0, 4, 100, "constant") == 0.25  # warm-up: (step + 1) / warmup
    assert lr_factor(3, 4, 100, "constant") == 1.0
    assert lr_factor(50, 0, 100, "cosine") == pytest.approx(0.5)  # half way: (1 + cos(pi / 2)) / 2
    assert lr_factor(100, 0, 100, "cosine") == pytest.approx(0.0)
    assert lr_factor(25, 0, 100, "linear") == pytest.approx(0.75)


def test_deepspeed_config_accumulation_and_errors():
    config = deepspeed_config(actor_cfg(stage=2, clip_grad=2.0), dp_size=2, on_gpu=False)
    assert config["gradient_accumulation_steps"] == 2  # 16 / (4 x 2)
    assert config["gradient_clipping"] == 2.0 and config["zero_optimization"]["stage"] == 2
    assert config["bf16"]["enabled"] is False  # bf16 is torch.autocast on GPUs, never DeepSpeed's cast
    assert deepspeed_config(actor_cfg(stage=0), 1, on_gpu=True)["gradient_clipping"] == 0.0  # FiniteAdamW clips
    with pytest.raises(ConfigError, match="global_batch_size"):
        deepspeed_config(actor_cfg(), dp_size=3, on_gpu=False)


@pytest.mark.parametrize("stage", [0, 2])
def test_update_changes_weights_and_skips_nan(single_rank_group, stage):
    torch.manual_seed(0)
    policy = TinyPolicy()
    algo = AlgorithmConfig(update_epoch=1)
    batch = synthetic_batch(policy)
    compute_advantages(batch, algo)
    trainer = Trainer(policy, actor_cfg(stage), algo, dp_size=1, device="cpu", total_optimizer_steps=10)
    before = copy.deepcopy(trainer.module.state_dict())
    metrics = trainer.train(batch, global_step=0)
    assert metrics["train/skipped_steps"] == 0 and math.isfinite(metrics["train/actor/grad_norm"])
    assert trainer.optimizer_steps == 2  # 32 samples / global batch 16
    changed = any(not torch.equal(before[k], v) for k, v in trainer.module.state_dict().items())
    assert changed
    trainer.module.nan_on_evaluate = True
    after_good = copy.deepcopy(trainer.module.state_dict())
    metrics = trainer.train(batch, global_step=1)
    assert metrics["train/skipped_steps"] == 2 and trainer.consecutive_skipped == 2
    for key, value in trainer.module.state_dict().items():
        assert torch.equal(after_good[key], value), f"{key} changed during a skipped update"


def test_save_load_round_trip(single_rank_group, tmp_path):
    algo = AlgorithmConfig(update_epoch=1)

    def fresh() -> Trainer:
        torch.manual_seed(0)
        return Trainer(TinyPolicy(), actor_cfg(0), algo, dp_size=1, device="cpu", total_optimizer_steps=10)

    torch.manual_seed(1)
    batch = synthetic_batch(TinyPolicy(), seed=1)
    compute_advantages(batch, algo)
    first = fresh()
    first.train(batch, 0)
    first.save(tmp_path)
    expected = first.train(batch, 1)
    second = fresh()
    second.load(tmp_path)
    assert second.optimizer_steps == 2
    got = second.train(batch, 1)
    assert got["train/actor/policy_loss"] == pytest.approx(expected["train/actor/policy_loss"], abs=1e-7)
    for (name, a), b in zip(first.module.state_dict().items(), second.module.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-7), name


def test_optimizer_groups_and_learning_rate_metrics(single_rank_group):
    """Group ``policy`` at lr, ``value_head`` at value_lr; both logged (docs/architecture.md, "Metrics"). The value
    group was once named differently from the name the metric looked up, so train/critic/lr never appeared."""
    optim = actor_cfg(0, lr=1e-4, value_lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01).optim
    optimizer = build_optimizer(TinyPolicy(), optim, zero_stage=0)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        ("policy", 1e-4, 0.01), ("value_head", 3e-3, 0.01)]
    assert optimizer.clip_grad == 1.0 and build_optimizer(TinyPolicy(), optim, zero_stage=2).clip_grad == 0.0
    frozen_value = TinyPolicy()
    frozen_value.value_head.requires_grad_(False)
    assert [g["name"] for g in build_optimizer(frozen_value, optim, 0).param_groups] == ["policy"]

    algo = AlgorithmConfig(update_epoch=1)
    batch = synthetic_batch(TinyPolicy())
    compute_advantages(batch, algo)
    trainer = Trainer(TinyPolicy(), actor_cfg(0, lr=1e-4, value_lr=3e-3, warmup_steps=4), algo, dp_size=1,
                      device="cpu", total_optimizer_steps=10)
    metrics = trainer.train(batch, global_step=0)  # two optimizer steps: the second ran at 2/4 of the base lr
    assert metrics["train/actor/lr"] == pytest.approx(1e-4 * 2 / 4)
    assert metrics["train/critic/lr"] == pytest.approx(3e-3 * 2 / 4)


def test_single_rank_runs_zero_0_unless_offloading():
    """One trainer rank: ZeRO partitions nothing, so the engine runs stage 0 (no per-gradient bucket hooks); CPU
    offload still needs ZeRO, and several ranks keep the configured stage."""
    cfg = actor_cfg(stage=2)
    assert effective_zero_stage(cfg.deepspeed, 1) == 0
    assert deepspeed_config(cfg, 1, on_gpu=True)["zero_optimization"]["stage"] == 0
    assert deepspeed_config(cfg, 1, on_gpu=True)["gradient_clipping"] == 0.0  # FiniteAdamW clips instead
    assert effective_zero_stage(cfg.deepspeed, 2) == 2
    offloading = ActorConfig.model_validate(cfg.model_dump() | {
        "deepspeed": {"zero_stage": 2, "bf16": True, "offload_optimizer": True}})
    assert effective_zero_stage(offloading.deepspeed, 1) == 2


def test_autocast_region_sees_optimizer_updates():
    """Two forwards inside one bf16 region with an optimizer step between them: the second must use the updated
    weights. torch's autocast cast cache (on by default) returns the first forward's bf16 copy of an fp32 leaf
    parameter for the rest of the region, so the whole multi-step update ran on stale weights."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    with bf16_autocast(torch.device("cpu"), enabled=True):
        first = layer(x)
        first.float().sum().backward()
        optimizer.step()
        second = layer(x)
    expected = torch.nn.functional.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16())
    assert not torch.equal(first, second)
    torch.testing.assert_close(second, expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the default region shows the stale cast this guards
        stale = layer(x)
        layer.weight.data.add_(1.0)
        assert torch.equal(layer(x), stale)


def test_zero_stages_agree(single_rank_group, monkeypatch):
    """ZeRO 0 (FiniteAdamW clips) and ZeRO 2 (DeepSpeed clips and partitions) reach the same weights. At dp 1
    the engine runs stage 0 either way (``effective_zero_stage``); forcing stage 2 there keeps its path tested."""
    import rlvla_cli.runtime.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "effective_zero_stage", lambda ds, dp: int(ds.zero_stage))
    algo = AlgorithmConfig(update_epoch=2)
    results = []
    for stage in (0, 2):
        torch.manual_seed(0)
        trainer = Trainer(TinyPolicy(), actor_cfg(stage, clip_grad=0.5), algo, dp_size=1, device="cpu",
                          total_optimizer_steps=10)
        for step in range(3):
            batch = synthetic_batch(trainer.module, seed=step)
            compute_advantages(batch, algo)
            metrics = trainer.train(batch, step)
        results.append(([p.detach().clone() for p in trainer.module.parameters()], metrics))
    (zero0, m0), (zero2, m2) = results
    assert m0["train/skipped_steps"] == m2["train/skipped_steps"] == 0
    assert m2["train/actor/grad_norm"] == pytest.approx(m0["train/actor/grad_norm"], rel=1e-3)
    for a, b in zip(zero0, zero2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_actor_mfu_estimate():
    from rlvla_cli.runtime.perf import actor_mfu, training_flops_per_sample

    policy = TinyPolicy()
    params = sum(p.numel() for p in policy.parameters())
    assert training_flops_per_sample(policy) == 6.0 * params  # forward 2N + backward 4N
    assert actor_mfu(policy, samples=100, seconds=1.0, device="cpu") is None  # no peak for a CPU

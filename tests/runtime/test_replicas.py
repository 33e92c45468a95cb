"""Rollout over several devices: batches split into row blocks over policy copies give what one copy gives;
weight sync and offload reach every copy; the runner uses them when the rollout has several devices."""

from __future__ import annotations

import dataclasses

import torch
from runtime_configs import small_config
from tiny_policy import tiny_factory

from rlvla_cli.commands.train import hardware_placement
from rlvla_cli.config.loader import load_config
from rlvla_cli.models.registry import build_policy
from rlvla_cli.runtime.replicas import ReplicatedPolicy, SyncGroup, row_blocks, slice_obs
from rlvla_cli.runtime.runner import Runner


def test_row_blocks_cover_the_batch_evenly():
    assert row_blocks(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert row_blocks(2, 4) == [(0, 1), (1, 2)]  # fewer rows than copies: no empty block
    assert row_blocks(8, 1) == [(0, 8)]


def _small_policy(seed: int):
    cfg = load_config(None).actor.model.model_copy(update={"image_size": 32})
    torch.manual_seed(seed)
    return build_policy(cfg, device="cpu").eval()


def _obs(batch: int) -> dict:
    gen = torch.Generator().manual_seed(1)
    return {"main_images": torch.randint(0, 256, (batch, 32, 32, 3), dtype=torch.uint8, generator=gen),
            "states": torch.randn(batch, 3, generator=gen),
            "task_descriptions": [f"touch the {c} cube" for c in ("red", "green", "blue", "red", "blue")][:batch]}


def test_replicated_predict_and_values_equal_a_single_copy():
    single = _small_policy(0)
    replicas = [_small_policy(0), _small_policy(0), _small_policy(0)]
    both = ReplicatedPolicy(replicas)
    obs = _obs(5)
    one, split = single.predict(obs, mode="eval"), both.predict(obs, mode="eval")  # greedy: deterministic
    assert torch.allclose(one.actions, split.actions, atol=1e-6)
    assert torch.allclose(one.values, split.values, atol=1e-6)
    assert set(one.forward_inputs) == set(split.forward_inputs)
    for key, value in one.forward_inputs.items():
        other = split.forward_inputs[key]
        # float rows may differ in the last bit: matmuls block differently at another batch size
        same = torch.allclose(value, other, atol=1e-5) if value.is_floating_point() else torch.equal(value, other)
        assert same, key
    assert torch.allclose(single.get_values(obs), both.get_values(obs), atol=1e-6)
    assert slice_obs(obs, 1, 3)["task_descriptions"] == obs["task_descriptions"][1:3]


def test_sync_group_updates_every_copy():
    source, copies = _small_policy(0), [_small_policy(1), _small_policy(2)]
    group = SyncGroup(source, copies)
    assert group.sync() == 1 and group.version == 1
    with torch.no_grad():
        next(source.parameters()).add_(1.0)
    for copy in copies:
        for (name, a), b in zip(source.named_parameters(), copy.parameters(), strict=True):
            assert torch.equal(a, b), name
    group.version = 7  # a resume restores the counter on every copy
    assert all(s.version == 7 for s in group.syncs)


def test_runner_uses_one_copy_per_rollout_device(tmp_path):
    steps = 2
    cfg = small_config(tmp_path, "disaggregated", steps=steps,
                       overrides=("cluster.component_placement={actor: 0, env: 1, rollout: 2-3}",
                                  "cluster.num_gpus_per_node=4", "runner.val_check_interval=2"))
    placement, offload = hardware_placement(cfg)
    rollout = placement.components["rollout"]
    assert len(rollout.processes) == 2
    # CPU mode names every slot "cpu"; give the second slot another device name so the runner sees two devices
    second = dataclasses.replace(rollout.processes[1], device="cpu:0")
    placement.components["rollout"] = dataclasses.replace(rollout, processes=(rollout.processes[0], second))
    runner = Runner(cfg, placement, offload, factory=tiny_factory, console=False)
    result = runner.run()
    assert result.status == "finished" and result.global_step == steps
    assert isinstance(runner.rollout_policy, ReplicatedPolicy) and len(runner.rollout_policy.replicas) == 2
    assert isinstance(runner.sync, SyncGroup) and runner.sync.version >= steps
    assert "eval/success_once" in result.last_metrics  # the in-loop evaluation ran on the replicated copies

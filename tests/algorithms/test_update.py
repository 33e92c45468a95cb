"""update_epoch end to end: PPO / GRPO learn a contextual bandit; warm-up, skips, accumulation, hooks."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from rlvla_cli.algorithms import (
    RolloutBatch,
    StepResult,
    build_optimizer,
    compute_advantages,
    train_on_batch,
    update_epoch,
)
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.models.base import EvaluateOutput, PolicyOutput, VLAPolicy

OBS_DIM = 4


class BanditPolicy(VLAPolicy):
    """Two arms as one action of one dim (C = A = 1); arm 1 is right when states[:, 0] > 0."""

    action_dim = 1
    num_action_chunks = 1

    def __init__(self, with_value: bool = True, hidden: int = 32):
        super().__init__()
        self.actor = nn.Sequential(nn.Linear(OBS_DIM, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        self.value_head = nn.Sequential(nn.Linear(OBS_DIM, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.with_value = with_value

    def predict(self, obs, mode="train") -> PolicyOutput:
        with torch.no_grad():
            dist = Categorical(logits=self.actor(obs["states"]))
            arm = dist.sample() if mode == "train" else dist.probs.argmax(-1)
            return PolicyOutput(
                actions=arm.float().view(-1, 1, 1),
                logprobs=dist.log_prob(arm).view(-1, 1, 1),
                values=self.value_head(obs["states"]) if self.with_value else None,
                forward_inputs={"states": obs["states"], "arms": arm},
            )

    def evaluate(self, forward_inputs, compute_entropy=True, compute_values=True) -> EvaluateOutput:
        dist = Categorical(logits=self.actor(forward_inputs["states"]))
        return EvaluateOutput(
            logprobs=dist.log_prob(forward_inputs["arms"]).view(-1, 1, 1),
            entropy=dist.entropy().view(-1, 1, 1) if compute_entropy else None,
            values=self.value_head(forward_inputs["states"]) if compute_values and self.with_value else None,
        )

    def get_values(self, obs):
        with torch.no_grad():
            return self.value_head(obs["states"])

    def value_head_parameters(self):
        return list(self.value_head.parameters()) if self.with_value else []


def correct_arm(states: torch.Tensor) -> torch.Tensor:
    return (states[..., 0] > 0).long()


def collect(policy: BanditPolicy, steps: int, envs: int, gen: torch.Generator, group_size: int = 1) -> RolloutBatch:
    """T one-step episodes per env (each terminates); envs in a group share the context (GRPO reset state)."""
    contexts = torch.randn(steps, envs // group_size, OBS_DIM, generator=gen).repeat_interleave(group_size, 1)
    outs = [policy.predict({"states": contexts[t]}) for t in range(steps)]
    arms = torch.stack([o.forward_inputs["arms"] for o in outs])
    rewards = (arms == correct_arm(contexts)).float().unsqueeze(-1)  # [T, B, 1]
    with_values = outs[0].values is not None
    return RolloutBatch(
        forward_inputs={"states": contexts, "arms": arms},
        old_logprobs=torch.stack([o.logprobs for o in outs]),
        rewards=rewards,
        terminations=torch.ones(steps, envs, 1, dtype=torch.bool),
        truncations=torch.zeros(steps, envs, 1, dtype=torch.bool),
        loss_mask=torch.ones(steps, envs, dtype=torch.bool),
        old_values=torch.stack([o.values for o in outs]) if with_values else None,
        last_values=torch.zeros(envs, 1) if with_values else None,
    )


def greedy_accuracy(policy: BanditPolicy) -> float:
    states = torch.randn(2000, OBS_DIM, generator=torch.Generator().manual_seed(123))
    arms = policy.predict({"states": states}, mode="eval").actions.view(-1).long()
    return float((arms == correct_arm(states)).float().mean())


@pytest.mark.parametrize(
    "cfg,steps,envs,group",
    [
        (AlgorithmConfig(update_epoch=2, entropy_bonus=0.001), 4, 32, 1),
        (AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=8, update_epoch=2), 2, 64, 8),
    ],
    ids=["ppo_gae", "grpo"],
)
def test_learns_contextual_bandit(cfg, steps, envs, group):
    torch.manual_seed(0)
    policy = BanditPolicy(with_value=cfg.loss_type == "actor_critic")
    optimizer = build_optimizer(policy, lr=3e-3, value_lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    start, accuracy, updates = time.monotonic(), greedy_accuracy(policy), 0
    for updates in range(1, 81):  # noqa: B007 - the count is reported on failure
        batch = collect(policy, steps, envs, gen, group)
        compute_advantages(batch, cfg)
        metrics = train_on_batch(
            policy, batch, optimizer, cfg, micro_batch_size=32, global_batch_size=64, clip_grad=1.0, generator=gen
        )
        accuracy = greedy_accuracy(policy)
        if accuracy > 0.95:
            break
    assert accuracy > 0.95, f"accuracy {accuracy:.3f} after {updates} updates"
    assert time.monotonic() - start < 20
    assert metrics["train/skipped_steps"] == 0
    assert all(math.isfinite(v) for v in metrics.values())
    expected = {"train/actor/policy_loss", "train/actor/approx_kl", "train/actor/clip_fraction", "train/actor/ratio",
                "train/actor/grad_norm", "train/actor/lr", "train/actor/entropy_loss"}  # fmt: skip
    if cfg.loss_type == "actor_critic":
        expected |= {"train/critic/value_loss", "train/critic/value_clip_ratio", "train/critic/explained_variance"}
    assert expected <= set(metrics)


def _ready_batch(policy, cfg, steps=2, envs=16, seed=0) -> RolloutBatch:
    torch.manual_seed(seed)
    batch = collect(policy, steps, envs, torch.Generator().manual_seed(seed))
    compute_advantages(batch, cfg)
    return batch


def _snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _changed(before, params) -> bool:
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, params, strict=True))


def test_critic_warmup_trains_only_the_value_head():
    cfg = AlgorithmConfig()
    policy = BanditPolicy()
    optimizer = build_optimizer(policy, lr=1e-2, value_lr=1e-2)
    batch = _ready_batch(policy, cfg)
    actor_before, value_before = _snapshot(policy.policy_parameters()), _snapshot(policy.value_head_parameters())
    kwargs = {"micro_batch_size": 8, "global_batch_size": 16, "clip_grad": 1.0}
    update_epoch(policy, batch, optimizer, cfg, critic_warmup_active=True, **kwargs)
    assert not _changed(actor_before, policy.policy_parameters())
    assert _changed(value_before, policy.value_head_parameters())
    update_epoch(policy, batch, optimizer, cfg, critic_warmup_active=False, **kwargs)
    assert _changed(actor_before, policy.policy_parameters())


def test_non_finite_loss_or_gradient_skips_the_step():
    cfg = AlgorithmConfig()
    policy = BanditPolicy()
    optimizer = build_optimizer(policy, lr=1e-2)
    batch = _ready_batch(policy, cfg)
    kwargs = {"micro_batch_size": 8, "global_batch_size": 16, "clip_grad": 1.0}
    before = _snapshot(policy.parameters())
    batch.advantages[0, 0] = float("nan")  # poisons the loss of exactly one global batch of two
    metrics = update_epoch(policy, batch, optimizer, cfg, generator=torch.Generator().manual_seed(0), **kwargs)
    assert metrics["train/skipped_steps"] == 1
    assert all(torch.isfinite(p).all() for p in policy.parameters())
    assert _changed(before, policy.parameters())  # the other step ran

    batch = _ready_batch(policy, cfg, seed=1)
    handle = policy.actor[0].weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    before = _snapshot(policy.parameters())
    metrics = update_epoch(policy, batch, optimizer, cfg, **kwargs)
    handle.remove()
    assert metrics["train/skipped_steps"] == 2
    assert not _changed(before, policy.parameters())


def test_gradient_accumulation_matches_one_big_micro_batch_through_the_hooks():
    """Hooks as the DeepSpeed engine uses them: backward per micro-batch, step after each one."""
    cfg = AlgorithmConfig(shuffle_micro_batches=False)
    policy = BanditPolicy()
    optimizer = build_optimizer(policy, lr=1e-2)
    batch = _ready_batch(policy, cfg)  # N = 32 samples

    def run(micro: int) -> tuple[list[list[torch.Tensor]], list[bool], int]:
        grads, boundaries, backward_calls = [], [], 0

        def backward(loss):
            nonlocal backward_calls
            backward_calls += 1
            loss.backward()

        def step(boundary: bool, skip: bool) -> StepResult | None:
            boundaries.append(boundary)
            if not boundary:
                return None
            grads.append([p.grad.clone() for p in policy.parameters()])
            optimizer.zero_grad(set_to_none=True)  # record only: parameters stay put
            return StepResult(grad_norm=1.0, skipped=skip)

        update_epoch(policy, batch, optimizer, cfg, micro_batch_size=micro, global_batch_size=16, clip_grad=None,
                     backward=backward, step=step)  # fmt: skip
        return grads, boundaries, backward_calls

    accumulated, boundaries, calls = run(micro=4)
    assert calls == 8 and boundaries == [False, False, False, True] * 2
    whole, _, _ = run(micro=16)
    for acc_step, whole_step in zip(accumulated, whole, strict=True):
        for a, w in zip(acc_step, whole_step, strict=True):
            torch.testing.assert_close(a, w, atol=1e-6, rtol=1e-5)


def test_optimizer_groups_and_learning_rate_metrics():
    policy = BanditPolicy()
    optimizer = build_optimizer(policy, lr=1e-4, value_lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)
    assert [g["name"] for g in optimizer.param_groups] == ["policy", "value_head"]
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 3e-3]
    cfg = AlgorithmConfig()
    metrics = update_epoch(policy, _ready_batch(policy, cfg), optimizer, cfg, micro_batch_size=8,
                           global_batch_size=32, clip_grad=10.0)  # fmt: skip
    assert metrics["train/actor/lr"] == 1e-4 and metrics["train/critic/lr"] == 3e-3
    no_value = build_optimizer(BanditPolicy(with_value=False), lr=1e-4, value_lr=3e-3)
    assert [g["name"] for g in no_value.param_groups] == ["policy"]

"""update_epoch end to end through the DeepSpeed trainer (one gloo rank on the CPU, the project's only stepper):
PPO / GRPO learn a contextual bandit; critic warm-up, skips, gradient accumulation against the Stepper contract."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from rlvla_cli.algorithms import RolloutBatch, StepResult, compute_advantages, update_epoch
from rlvla_cli.config.actor import ActorConfig
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.models.base import EvaluateOutput, PolicyOutput, VLAPolicy
from rlvla_cli.runtime.trainer import Trainer

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


def bandit_trainer(policy: BanditPolicy, cfg: AlgorithmConfig, micro: int, global_batch: int, **optim) -> Trainer:
    """A ZeRO-0 trainer rank around ``policy`` (``optim``: ``actor.optim`` keys; default lr 1e-2, clip 1)."""
    actor = ActorConfig.model_validate({
        "micro_batch_size": micro, "global_batch_size": global_batch,
        "optim": {"lr": 1e-2, "value_lr": 1e-2, "clip_grad": 1.0, **optim},
        "deepspeed": {"zero_stage": 0}, "model": {"model_type": "small"},
    })
    return Trainer(policy, actor, cfg, dp_size=1, device="cpu", total_optimizer_steps=1000)


@pytest.mark.parametrize(
    "cfg,steps,envs,group",
    [
        (AlgorithmConfig(update_epoch=2, entropy_bonus=0.001), 4, 32, 1),
        (AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=8, update_epoch=2), 2, 64, 8),
    ],
    ids=["ppo_gae", "grpo"],
)
def test_learns_contextual_bandit(single_rank_group, cfg, steps, envs, group):
    torch.manual_seed(0)
    policy = BanditPolicy(with_value=cfg.loss_type == "actor_critic")
    trainer = bandit_trainer(policy, cfg, micro=32, global_batch=64, lr=3e-3, value_lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    start, accuracy, updates = time.monotonic(), greedy_accuracy(policy), 0
    for updates in range(1, 81):  # noqa: B007 - the count is reported on failure
        batch = collect(policy, steps, envs, gen, group)
        compute_advantages(batch, cfg)
        metrics = trainer.train(batch, updates)
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
        expected |= {"train/critic/value_loss", "train/critic/value_clip_ratio", "train/critic/explained_variance",
                     "train/critic/lr"}  # fmt: skip
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


def test_critic_warmup_trains_only_the_value_head(single_rank_group):
    cfg = AlgorithmConfig(update_epoch=1)
    policy = BanditPolicy()
    trainer = bandit_trainer(policy, cfg, micro=8, global_batch=16, critic_warmup_steps=1)
    batch = _ready_batch(policy, cfg)
    actor_before, value_before = _snapshot(policy.policy_parameters()), _snapshot(policy.value_head_parameters())
    trainer.train(batch, global_step=0)  # inside the warm-up
    assert not _changed(actor_before, policy.policy_parameters())
    assert _changed(value_before, policy.value_head_parameters())
    trainer.train(batch, global_step=1)
    assert _changed(actor_before, policy.policy_parameters())


def test_non_finite_loss_or_gradient_skips_the_step(single_rank_group):
    cfg = AlgorithmConfig(update_epoch=1)
    policy = BanditPolicy()
    trainer = bandit_trainer(policy, cfg, micro=8, global_batch=16)
    batch = _ready_batch(policy, cfg)
    before = _snapshot(policy.parameters())
    batch.advantages[0, 0] = float("nan")  # poisons the loss of exactly one global batch of two
    metrics = trainer.train(batch, global_step=0)
    assert metrics["train/skipped_steps"] == 1 and metrics["train/nonfinite_losses"] == 1
    assert all(torch.isfinite(p).all() for p in policy.parameters())
    assert _changed(before, policy.parameters())  # the other step ran

    batch = _ready_batch(policy, cfg, seed=1)
    handle = policy.actor[0].weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    before = _snapshot(policy.parameters())
    metrics = trainer.train(batch, global_step=1)
    handle.remove()
    assert metrics["train/skipped_steps"] == 2 and metrics["train/nonfinite_losses"] == 0
    assert not _changed(before, policy.parameters())


class RecordingStepper:
    """A Stepper that records the accumulated gradients at each boundary and leaves the parameters alone."""

    def __init__(self, policy: nn.Module):
        self.policy, self.grads, self.boundaries, self.backward_calls = policy, [], [], 0

    def backward(self, loss: torch.Tensor) -> None:
        self.backward_calls += 1
        loss.backward()

    def step(self, boundary: bool, skip: bool) -> StepResult | None:
        self.boundaries.append(boundary)
        if not boundary:
            return None
        self.grads.append([p.grad.clone() for p in self.policy.parameters()])
        self.policy.zero_grad(set_to_none=True)
        return StepResult(grad_norm=1.0, skipped=skip)


def test_gradient_accumulation_matches_one_big_micro_batch_through_the_stepper():
    """The Stepper contract: backward per micro-batch, step after each one, boundary at the global batch's end."""
    cfg = AlgorithmConfig(shuffle_micro_batches=False)
    policy = BanditPolicy()
    batch = _ready_batch(policy, cfg)  # N = 32 samples

    def run(micro: int) -> RecordingStepper:
        stepper = RecordingStepper(policy)
        update_epoch(policy, batch, stepper, cfg, micro_batch_size=micro, global_batch_size=16)
        return stepper

    accumulated = run(micro=4)
    assert accumulated.backward_calls == 8 and accumulated.boundaries == [False, False, False, True] * 2
    whole = run(micro=16)
    for acc_step, whole_step in zip(accumulated.grads, whole.grads, strict=True):
        for a, w in zip(acc_step, whole_step, strict=True):
            torch.testing.assert_close(a, w, atol=1e-6, rtol=1e-5)

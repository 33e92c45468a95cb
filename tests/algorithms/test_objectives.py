"""The registered objectives at each level, hand-computed at ratio 1, and rollout metrics."""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.algorithms import LOSSES, FlatBatch, RolloutBatch, rollout_metrics
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.models.base import EvaluateOutput

N, C, A = 2, 2, 3


def _micro(advantages: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor | None) -> FlatBatch:
    return FlatBatch(
        forward_inputs={},
        old_logprobs=torch.full((N, C, A), -1.0),
        advantages=advantages,
        loss_mask=torch.tensor([True, False]),  # sample 1 never counts
        old_values=old_values,
        returns=returns,
    )


def _output(values: torch.Tensor | None) -> EvaluateOutput:
    # logprobs equal to the old ones: ratio 1 everywhere, so the policy loss is -mean(A) at the level
    return EvaluateOutput(logprobs=torch.full((N, C, A), -1.0), entropy=torch.ones(N, C, A), values=values)


@pytest.mark.parametrize("logprob_type", ["token_level", "action_level"])
def test_action_level_advantages_with_per_action_values(logprob_type):
    cfg = AlgorithmConfig(
        reward_type="action_level", logprob_type=logprob_type, entropy_type="action_level",
        entropy_bonus=0.1, value_loss_coef=0.5, value_clip=None,
    )  # fmt: skip
    micro = _micro(torch.tensor([[1.0, 2.0], [30.0, 40.0]]), torch.tensor([[1.0, 3.0], [9.0, 9.0]]), None)
    loss, metrics = LOSSES.get("actor_critic")(_output(torch.zeros(N, C)), micro, cfg)
    # policy: -(1 + 2) / 2 = -1.5 (each action's A repeated over its 3 dims at token level: same mean)
    # entropy (action level): each action sums 3 dims -> 3; bonus 0.1 -> -0.3
    # value (V = C, Huber in its quadratic part): (0.5 * 1^2 + 0.5 * 3^2) / 2 = 2.5, coef 0.5 -> 1.25
    assert float(metrics["train/actor/policy_loss"]) == pytest.approx(-1.5)
    assert float(metrics["train/actor/entropy_loss"]) == pytest.approx(3.0)
    assert float(metrics["train/critic/value_loss"]) == pytest.approx(2.5)
    assert float(loss) == pytest.approx(-1.5 - 0.3 + 1.25)


def test_chunk_level_with_one_value_per_chunk_and_critic_warmup():
    cfg = AlgorithmConfig(logprob_type="chunk_level", entropy_type="chunk_level", value_clip=0.5)
    micro = _micro(torch.tensor([2.0, 50.0]), torch.tensor([3.0, 0.0]), torch.tensor([[0.0], [0.0]]))
    loss, metrics = LOSSES.get("actor_critic")(_output(torch.tensor([[2.0], [0.0]])), micro, cfg)
    # policy: -2 ; value: V = 2 moved 2 from V_old = 0, clipped to 0.5:
    # max(0.5 * (3 - 2)^2, 0.5 * (3 - 0.5)^2) = 3.125 (clip binds)
    assert float(metrics["train/critic/value_loss"]) == pytest.approx(3.125)
    assert float(metrics["train/critic/value_clip_ratio"]) == 1.0
    assert float(loss) == pytest.approx(-2.0 + 3.125)
    warm, _ = LOSSES.get("actor_critic")(_output(torch.tensor([[2.0], [0.0]])), micro, cfg, critic_warmup_active=True)
    assert float(warm) == pytest.approx(3.125)
    actor_only, _ = LOSSES.get("actor")(_output(None), micro, AlgorithmConfig(logprob_type="chunk_level"))
    assert float(actor_only) == pytest.approx(-2.0)


def test_missing_pieces_are_clear_errors():
    micro = _micro(torch.ones(N), torch.ones(N), None)
    with pytest.raises(ValueError, match="needs values"):
        LOSSES.get("actor_critic")(_output(None), micro, AlgorithmConfig())
    no_entropy = EvaluateOutput(logprobs=torch.zeros(N, C, A), entropy=None, values=None)
    with pytest.raises(ValueError, match="no entropy"):
        LOSSES.get("actor")(no_entropy, micro, AlgorithmConfig(entropy_bonus=0.01))


def test_rollout_metrics_over_masked_steps():
    batch = RolloutBatch(
        forward_inputs={}, old_logprobs=torch.zeros(2, 2, 1, 1),
        rewards=torch.tensor([[[1.0], [2.0]], [[3.0], [100.0]]]),
        terminations=torch.zeros(2, 2, 1, dtype=torch.bool), truncations=torch.zeros(2, 2, 1, dtype=torch.bool),
        loss_mask=torch.tensor([[True, True], [True, False]]),
        advantages=torch.tensor([[1.0, -1.0], [0.5, 9.0]]), returns=torch.tensor([[2.0, 4.0], [6.0, 9.0]]),
    )  # fmt: skip
    metrics = rollout_metrics(batch)
    assert metrics["rollout/rewards"] == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    assert (metrics["rollout/advantages_max"], metrics["rollout/advantages_min"]) == (1.0, -1.0)
    assert metrics["rollout/returns_mean"] == pytest.approx(4.0)

"""RolloutBatch validation, split / cat along the env axis, micro-batching; the name registries."""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.algorithms import ADVANTAGES, LOSSES, Registry, RolloutBatch, split_indices
from rlvla_cli.errors import UserError


def _batch(t=3, b=4, c=2, a=3, v=1) -> RolloutBatch:
    return RolloutBatch(
        forward_inputs={"tokens": torch.arange(t * b).reshape(t, b, 1).expand(t, b, 5)},
        old_logprobs=torch.zeros(t, b, c, a),
        rewards=torch.zeros(t, b, c),
        terminations=torch.zeros(t, b, c, dtype=torch.bool),
        truncations=torch.zeros(t, b, c, dtype=torch.bool),
        loss_mask=torch.ones(t, b, dtype=torch.bool),
        old_values=torch.zeros(t, b, v),
        bootstrap_values=torch.zeros(t, b, v),
        last_values=torch.zeros(b, v),
        advantages=torch.arange(t * b, dtype=torch.float32).reshape(t, b),
        returns=torch.zeros(t, b),
    )


def test_validate_accepts_a_consistent_batch_and_names_the_wrong_field():
    _batch().validate()
    _batch(v=2).validate()  # V = C
    bad = _batch()
    bad.loss_mask = torch.ones(3, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="loss_mask"):
        bad.validate()
    bad = _batch()
    bad.terminations = torch.zeros(3, 4, 2)
    with pytest.raises(ValueError, match="terminations must be torch.bool"):
        bad.validate()
    bad = _batch()
    bad.forward_inputs["pixels"] = torch.zeros(4, 3, 8)
    with pytest.raises(ValueError, match="pixels"):
        bad.validate()
    with pytest.raises(ValueError, match="V=3"):
        _batch(v=3).validate()


@pytest.mark.parametrize("micro", [1, 5, 12, 50])
@pytest.mark.parametrize("shuffle", [True, False])
def test_micro_batches_cover_every_sample_once(micro, shuffle):
    batch = _batch()
    gen = torch.Generator().manual_seed(0)
    seen = []
    flat = batch.flatten()
    micro_batches = [idx for group in split_indices(len(flat), len(flat), micro, shuffle, gen) for idx in group]
    for mb in (flat.select(idx) for idx in micro_batches):
        assert len(mb) <= micro
        # each sample keeps its own fields together: token id == advantage == t * B + b
        torch.testing.assert_close(mb.forward_inputs["tokens"][:, 0].float(), mb.advantages)
        assert mb.old_logprobs.shape[1:] == (2, 3)
        seen += mb.advantages.long().tolist()
    assert sorted(seen) == list(range(12))
    if not shuffle:
        assert seen == list(range(12))  # time-major order: sample t * B + b


def test_split_and_cat_follow_each_fields_env_axis():
    batch = _batch(b=4)
    batch.last_values = torch.arange(4.0).reshape(4, 1)  # [B, V]: the env axis is 0 here, 1 elsewhere
    left, right = batch.split(2)
    for part, envs in ((left, [0, 1]), (right, [2, 3])):
        part.validate()
        assert part.num_envs == 2 and part.last_values.view(-1).tolist() == [float(e) for e in envs]
        assert part.forward_inputs["tokens"][:, :, 0].tolist() == [[t * 4 + e for e in envs] for t in range(3)]
        torch.testing.assert_close(part.advantages, batch.advantages[:, envs])
    merged = RolloutBatch.cat([left, right])
    for name in ("old_logprobs", "rewards", "loss_mask", "old_values", "last_values", "advantages", "returns"):
        assert torch.equal(getattr(merged, name), getattr(batch, name)), name
    assert torch.equal(merged.forward_inputs["tokens"], batch.forward_inputs["tokens"])
    with pytest.raises(ValueError, match="4 envs do not split into 3"):
        batch.split(3)
    no_values = _batch()
    no_values.old_values = no_values.bootstrap_values = no_values.last_values = None
    assert RolloutBatch.cat(no_values.split(4)).old_values is None


def test_split_indices_groups_global_then_micro():
    plan = split_indices(10, 4, 3, shuffle=False)
    assert [[idx.tolist() for idx in g] for g in plan] == [[[0, 1, 2], [3]], [[4, 5, 6], [7]], [[8, 9]]]


def test_flatten_needs_advantages():
    batch = _batch()
    batch.advantages = None
    with pytest.raises(ValueError, match="compute_advantages"):
        batch.flatten()


def test_registry_rejects_duplicates_and_lists_valid_names():
    reg = Registry("thing", "algorithm.thing")
    reg.register("a")(lambda: 1)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a")(lambda: 2)
    with pytest.raises(UserError, match="valid: a") as info:
        reg.get("b")
    assert "algorithm.thing" in str(info.value)
    assert ADVANTAGES.names() == ["gae", "grpo"]
    assert LOSSES.names() == ["actor", "actor_critic"]
    with pytest.raises(UserError, match="gae, grpo"):
        ADVANTAGES.get("vtrace")

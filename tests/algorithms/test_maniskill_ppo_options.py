"""The PPO options that ManiSkill's own baseline has (haosulab/ManiSkill examples/baselines/ppo/ppo_cpu.py and
ppo.py): finite-horizon GAE, per-minibatch advantage normalisation, the target-KL early stop.

The finite-horizon GAE is checked against its definition (the documented comment in ppo.py: the k-step advantage
estimates of GAE eq. 16 weighted by lambda^(k-1) and normalised by the sum of the weights that fit before the
rollout or episode ends), written here as an explicit weighted sum, not as the library's backward recursion.
"""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.algorithms import train_on_batch, update_epoch
from rlvla_cli.algorithms.advantages import finite_horizon_gae, generalized_advantage_estimate
from rlvla_cli.algorithms.update import minibatch_normalized
from rlvla_cli.config.algorithm import AlgorithmConfig
from tests.algorithms.test_update import BanditPolicy, RecordingStepper, _ready_batch


def weighted_k_step(rewards, values, last_value, gamma, lam, final=None):
    """Finite-horizon GAE of one episode segment (no done inside), by its definition.

    A_t = sum_{k=1..n} lam^(k-1) Ahat_k / sum_{k=1..n} lam^(k-1), n = T - t steps left,
    Ahat_k = sum_{i<k} gamma^i r_{t+i} + gamma^k V_{t+k} - V_t, V_T = last_value (or ``final`` when the segment
    ended an episode that bootstraps: then V_T is V(final obs)).
    """
    num = len(rewards)
    ext = list(values) + [last_value if final is None else final]
    out = []
    for t in range(num):
        n = num - t
        total = weight = 0.0
        for k in range(1, n + 1):
            ret = sum(gamma**i * rewards[t + i] for i in range(k)) + gamma**k * ext[t + k]
            total += lam ** (k - 1) * (ret - values[t])
            weight += lam ** (k - 1)
        out.append(total / weight)
    return out


def _col(xs, dtype=torch.float64):
    return torch.tensor(xs, dtype=dtype).unsqueeze(1)  # [T] -> [T, 1]


def _fh(rewards, values, last, terms, truncs, boots=None, gamma=0.8, lam=0.9, bootstrap_type="always"):
    adv, ret = finite_horizon_gae(
        _col(rewards), _col(values), torch.tensor([last], dtype=torch.float64), _col(terms, torch.bool),
        _col(truncs, torch.bool), None if boots is None else _col(boots), gamma, lam, bootstrap_type,
    )  # fmt: skip
    return adv[:, 0].tolist(), ret[:, 0].tolist()


def test_finite_horizon_two_steps_by_hand():
    # T = 2, gamma 0.8, lambda 0.9, V = (1, 2), V(s_2) = 3, r = (1, 0.5):
    # t = 1: one estimate: 0.5 + 0.8 * 3 - 2 = 0.9
    # t = 0: (1 * [1 + 0.8 * 2 - 1] + 0.9 * [1 + 0.8 * 0.5 + 0.64 * 3 - 1]) / 1.9 = (1.6 + 0.9 * 2.32) / 1.9
    adv, ret = _fh([1.0, 0.5], [1.0, 2.0], 3.0, [False, False], [False, False])
    assert adv == pytest.approx([(1.6 + 0.9 * 2.32) / 1.9, 0.9])
    assert ret == pytest.approx([adv[0] + 1.0, adv[1] + 2.0])


def test_finite_horizon_matches_the_weighted_k_step_definition():
    gen = torch.Generator().manual_seed(0)
    rewards, values = torch.rand(7, generator=gen).tolist(), torch.rand(7, generator=gen).tolist()
    adv, _ = _fh(rewards, values, 0.7, [False] * 7, [False] * 7, gamma=0.9, lam=0.8)
    assert adv == pytest.approx(weighted_k_step(rewards, values, 0.7, 0.9, 0.8))


def test_finite_horizon_restarts_at_an_episode_end_and_bootstraps_its_final_value():
    # Episode 1 is steps 0-2 (ends at step 2 with V(final) = 5), episode 2 is steps 3-4 (rollout ends, V = 0.7).
    rewards, values = [0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 1.5, 2.0, 0.5, 0.6]
    dones = [False, False, True, False, False]
    for term, boot_type, final in [(True, "always", 5.0), (False, "standard", 5.0), (True, "standard", 0.0)]:
        terms = [d and term for d in dones]
        truncs = [d and not term for d in dones]
        adv, _ = _fh(rewards, values, 0.7, terms, truncs, boots=[0.0, 0.0, 5.0, 0.0, 0.0], bootstrap_type=boot_type)
        expected = weighted_k_step(rewards[:3], values[:3], None, 0.8, 0.9, final=final)
        expected += weighted_k_step(rewards[3:], values[3:], 0.7, 0.8, 0.9)
        assert adv == pytest.approx(expected), (term, boot_type)


def test_finite_horizon_differs_from_standard_gae_only_near_the_end():
    gen = torch.Generator().manual_seed(1)
    rewards, values = torch.rand(40, 3, generator=gen), torch.rand(40, 3, generator=gen)
    flags = torch.zeros(40, 3, dtype=torch.bool)
    args = (rewards, values, torch.rand(3, generator=gen), flags, flags, None, 0.8, 0.5)
    fh, _ = finite_horizon_gae(*args)
    std, _ = generalized_advantage_estimate(*args)
    # far from the end both are the same weighted average up to lambda^(T - t) (0.5^30 ~ 1e-9)
    torch.testing.assert_close(fh[:10], std[:10], atol=1e-6, rtol=0)
    assert not torch.allclose(fh[-5:], std[-5:])
    torch.testing.assert_close(fh[-1], std[-1])  # one estimate left: both are the one-step TD error


def test_config_switches_the_estimator():
    policy = BanditPolicy()
    batch = _ready_batch(policy, AlgorithmConfig(), steps=4)
    plain = batch.advantages.clone()
    batch_fh = _ready_batch(policy, AlgorithmConfig(finite_horizon_gae=True, normalize_advantages=False), steps=4)
    # the bandit's steps all terminate: one estimate per step, finite-horizon == standard there
    batch_std = _ready_batch(policy, AlgorithmConfig(normalize_advantages=False), steps=4)
    torch.testing.assert_close(batch_fh.advantages, batch_std.advantages)
    assert not torch.equal(plain, batch_std.advantages)  # normalize_advantages (scope batch) changed them


def test_minibatch_normalized_touches_only_the_selected_rows():
    adv = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0])
    mask = torch.tensor([True, True, True, True, False])
    out = minibatch_normalized(adv, mask, torch.tensor([0, 1, 2]))
    # rows 0-2: mean 2, std 1 (Bessel, as torch.std in ppo_cpu.py) -> -1, 0, 1
    assert out[:3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-6)
    assert out[3:].tolist() == [10.0, 20.0] and adv.tolist() == [1.0, 2.0, 3.0, 10.0, 20.0]


def _grads(cfg, global_batch):
    torch.manual_seed(0)
    policy = BanditPolicy()
    batch = _ready_batch(policy, cfg, steps=2, envs=16)  # 32 samples
    stepper = RecordingStepper(policy)
    update_epoch(policy, batch, stepper, cfg, micro_batch_size=8, global_batch_size=global_batch)
    return stepper.grads, batch


def test_minibatch_scope_normalises_each_global_batch():
    # policy loss only, first pass (ratio 1, no clip binds): the gradient is linear in the advantages
    base = dict(shuffle_micro_batches=False, normalize_advantages=True, value_loss_coef=0.0)
    per_mb = AlgorithmConfig(advantage_norm_scope="minibatch", **base)
    per_batch = AlgorithmConfig(advantage_norm_scope="batch", **base)
    mb_grads, mb_batch = _grads(per_mb, 32)
    b_grads, _ = _grads(per_batch, 32)
    assert mb_batch.advantages.abs().max() > 0
    # one global batch = the whole batch: both scopes normalise over the same 32 samples; the batch scope divides
    # by the population std, the minibatch scope by the Bessel-corrected one (as ppo_cpu.py): factor sqrt(31/32)
    for a, b in zip(mb_grads[0], b_grads[0], strict=True):
        torch.testing.assert_close(a, b * (31 / 32) ** 0.5, atol=1e-6, rtol=1e-5)
    # two global batches: each half is normalised on its own, which changes the gradients
    mb_grads, mb_batch = _grads(per_mb, 16)
    b_grads, _ = _grads(per_batch, 16)
    assert any(not torch.allclose(a, b) for a, b in zip(mb_grads[0], b_grads[0], strict=True))
    raw = _ready_batch(BanditPolicy(), per_mb).advantages
    assert raw.mean().abs() > 1e-3  # scope minibatch leaves compute_advantages' output raw


class JumpingStepper(RecordingStepper):
    """Every optimizer step moves the actor's logits far (a large update), so the next KL is large."""

    def step(self, boundary, skip):
        result = super().step(boundary, skip)
        if boundary:
            with torch.no_grad():
                self.policy.actor[-1].bias.add_(torch.tensor([3.0, -3.0]))
        return result


@pytest.mark.parametrize("target_kl,steps,stopped", [(None, 2 * 4, 0.0), (0.1, 1, 2.0), (1e3, 8, 0.0)])
def test_target_kl_stops_before_the_step_that_exceeds_it(target_kl, steps, stopped):
    # ppo_cpu.py: approx_kl of the minibatch is measured with the current weights before its update; above
    # target_kl that update is skipped and both the minibatch and the epoch loop end.
    cfg = AlgorithmConfig(update_epoch=2, target_kl=target_kl)
    torch.manual_seed(0)
    policy = BanditPolicy()
    batch = _ready_batch(policy, cfg, steps=2, envs=16)
    stepper = JumpingStepper(policy)
    metrics = train_on_batch(policy, batch, stepper, cfg, micro_batch_size=8, global_batch_size=8)
    assert len(stepper.grads) == steps
    assert stepper.backward_calls == steps  # the stopped micro-batch is not backpropagated
    assert metrics["train/early_stopped_epochs"] == stopped
    assert "train/kl_stopped" not in metrics


def test_target_kl_must_be_positive():
    with pytest.raises(ValueError, match="greater than 0"):
        AlgorithmConfig(target_kl=0.0)


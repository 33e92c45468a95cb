"""Issue 16: each divergence from RLinf's embodied arithmetic, reproduced under its switch (rlvla's default kept).

Expected numbers are RLinf's, worked out by hand from its sources (RLinf/RLinf at a3816b5):
rlinf/workers/actor/embodied_fsdp_actor_worker.py (what the worker passes), rlinf/algorithms/losses.py,
rlinf/algorithms/advantages.py, rlinf/algorithms/utils.py (calculate_scores), rlinf/utils/utils.py
(masked_mean_ratio), rlinf/utils/metric_utils.py (compute_loss_mask), rlinf/workers/env/env_worker.py
(compute_bootstrap_rewards), rlinf/models/embodiment/openpi/openpi_action_model.py (entropy, value input).
"""

from __future__ import annotations

import math

import pytest
import torch

from rlvla_cli.algorithms import LOSSES, RolloutBatch, compute_advantages, mask_after_first_done, mean_entropy
from rlvla_cli.algorithms.advantages import generalized_advantage_estimate
from rlvla_cli.algorithms.aggregation import episode_lengths, episode_weights, weighted_mean
from rlvla_cli.algorithms.losses import ppo_policy_loss, value_loss
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.models.base import EvaluateOutput

GAMMA, LAM = 0.99, 0.95


def _batch(rewards, terms, truncs, auto_reset: bool, values=None, boot=None, last=None) -> RolloutBatch:
    """rewards / flags ``[T, B, C]``; values / boot ``[T, B]``; last ``[B]``."""
    t, b, c = rewards.shape
    dones = terms | truncs
    loss_mask = torch.ones(t, b, dtype=torch.bool) if auto_reset else mask_after_first_done(dones)
    return RolloutBatch(
        forward_inputs={"x": torch.zeros(t, b, 1)},
        old_logprobs=torch.zeros(t, b, c, 1),
        rewards=rewards,
        terminations=terms,
        truncations=truncs,
        loss_mask=loss_mask,
        old_values=None if values is None else values.unsqueeze(-1),
        bootstrap_values=None if boot is None else boot.unsqueeze(-1),
        last_values=None if last is None else last.unsqueeze(-1),
    )


# ---- 1. GRPO with auto-reset mixes episodes --------------------------------------------------------------------


def test_grpo_scores_the_first_episode_only_without_auto_reset():
    # env 0 succeeds at chunks 0 and 2 (reward 1, terminated); env 1 never succeeds. T = 3, B = 2, C = 1.
    rewards = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]).unsqueeze(-1)
    terms = torch.tensor([[True, False], [False, False], [True, False]]).unsqueeze(-1)
    truncs = torch.zeros_like(terms)
    cfg = AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=2, normalize_advantages=False)
    # auto-reset (all steps in the loss): score 2 = two episodes summed, credit spread over both
    mixed = _batch(rewards, terms, truncs, auto_reset=True)
    _, mixed_returns = compute_advantages(mixed, cfg)
    assert mixed_returns[0, 0] == 2.0
    # RLinf's calculate_scores sums rewards up to the first done: 1; its loss mask drops chunks 1 and 2 of env 0
    first = _batch(rewards, terms, truncs, auto_reset=False)
    _, returns = compute_advantages(first, cfg)
    assert returns[0, 0] == 1.0 and returns[0, 1] == 0.0
    assert first.loss_mask[:, 0].tolist() == [True, False, False]


# ---- 2. loss aggregation ---------------------------------------------------------------------------------------


def test_episode_weighted_policy_loss_matches_rlinf():
    # ratio 1, A = [1, 2, 99, 3], mask [1, 1, 0, 1], episode lengths [1, 2, 1, 2], max_episode_steps 2.
    logp = torch.zeros(4)
    adv = torch.tensor([1.0, 2.0, 99.0, 3.0])
    mask = torch.tensor([True, True, False, True])
    weights = 2.0 / torch.tensor([1.0, 2.0, 1.0, 2.0])  # max_steps / episode_len = loss_mask_sum / max, inverted
    kw = dict(clip_ratio_low=0.2, clip_ratio_high=0.2)
    # RLinf masked_mean_ratio: mean over 4 of -A * mask * (2 / len) = (-1*2 - 2*1 + 0 - 3*1) / 4 = -1.75
    rlinf, _ = ppo_policy_loss(logp, logp, adv, mask, weights=weights, **kw)
    assert float(rlinf) == pytest.approx(-1.75)
    # rlvla masked mean: (-1 - 2 - 3) / 3 = -2.0
    default, _ = ppo_policy_loss(logp, logp, adv, mask, **kw)
    assert float(default) == pytest.approx(-2.0)


def test_episode_weighted_value_loss():
    # Huber (delta 10) in its quadratic part: 0.5 * err^2 = [0.5, 2, 50, 4.5]; weights [2, 1, 2, 1], mask [1,1,0,1]
    # -> (1 + 2 + 0 + 4.5) / 4 = 1.875 (masked mean: (0.5 + 2 + 4.5) / 3 = 2.333)
    values, returns = torch.zeros(4), torch.tensor([1.0, 2.0, 10.0, 3.0])
    mask, weights = torch.tensor([True, True, False, True]), torch.tensor([2.0, 1.0, 2.0, 1.0])
    loss, _ = value_loss(values, None, returns, mask, value_clip=None, huber_delta=10.0, weights=weights)
    assert float(loss) == pytest.approx(1.875)
    plain, _ = value_loss(values, None, returns, mask, value_clip=None, huber_delta=10.0)
    assert float(plain) == pytest.approx(7.0 / 3.0)


def test_episode_lengths_are_rlinf_loss_mask_sum():
    # T = 3 chunks of C = 2 actions, B = 3. env 0 ends at chunk 1 action 0 -> actions t0a0, t0a1, t1a0 = 3;
    # env 1 never ends -> 6; env 2 ends at its very first action -> 1 (the ending action counts, as
    # compute_loss_mask's cumsum over [initial dones, step dones] keeps it).
    dones = torch.zeros(3, 3, 2, dtype=torch.bool)
    dones[1, 0, 0] = True
    dones[2, 0, 1] = True  # a later episode of env 0 (auto-reset) does not extend the first
    dones[0, 2, 0] = True
    assert episode_lengths(dones).tolist() == [3, 6, 1]
    weights = episode_weights(dones)
    assert weights.shape == (3, 3)
    assert weights[:, 0].tolist() == [2.0, 2.0, 2.0] and weights[0, 1] == 1.0 and weights[0, 2] == 6.0


def test_weighted_mean_broadcasts_over_token_dims():
    # token level [N, C, A]: the mean runs over every element, as RLinf's (values / ratio * mask).mean()
    x = torch.arange(12.0).reshape(2, 2, 3)
    mask, weights = torch.tensor([True, False]), torch.tensor([3.0, 5.0])
    # sample 0 sums 0 + ... + 5 = 15, times 3 = 45; sample 1 masked; 12 elements -> 3.75
    assert float(weighted_mean(x, mask, weights)) == pytest.approx(3.75)


def test_episode_weighted_through_compute_advantages_and_the_objective():
    # T = 2 chunks, C = 1, B = 2 (a GRPO group). env 0 succeeds at chunk 0 (len 1), env 1 fails, truncated at 1.
    rewards = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).unsqueeze(-1)
    terms = torch.tensor([[True, False], [False, False]]).unsqueeze(-1)
    truncs = torch.tensor([[False, False], [False, True]]).unsqueeze(-1)
    cfg = AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=2, normalize_advantages=False,
                          loss_agg="episode_weighted", logprob_type="chunk_level", clip_ratio_c=None)
    batch = _batch(rewards, terms, truncs, auto_reset=False)
    compute_advantages(batch, cfg)
    flat = batch.flatten()  # samples t * B + b: (t0,e0), (t0,e1), (t1,e0) masked, (t1,e1)
    assert flat.loss_weights.tolist() == [2.0, 1.0, 2.0, 1.0]
    out = EvaluateOutput(logprobs=torch.zeros(4, 1, 1), entropy=None, values=None)
    loss, _ = LOSSES.get("actor")(out, flat, cfg)
    # A = +-0.7071 (scores 1, 0); terms -A * w * mask: -0.7071 * 2, +0.7071, 0, +0.7071 -> sum 0, mean 0:
    # each episode weighs the same, so a group's zero-sum advantages cancel (the masked mean does not)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    # masked mean instead: (-0.7071 + 0.7071 + 0.7071) / 3 = 0.2357
    batch_plain = _batch(rewards, terms, truncs, auto_reset=False)
    compute_advantages(batch_plain, cfg.model_copy(update={"loss_agg": "masked_mean"}))
    assert batch_plain.loss_weights is None
    plain, _ = LOSSES.get("actor")(out, batch_plain.flatten(), cfg)
    assert float(plain) == pytest.approx(math.sqrt(0.5) / 3, abs=1e-5)


# ---- 3. GRPO advantage normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize("normalize,expected", [(False, (0.7071, -0.7071)), (True, (2.0, -0.5))])
def test_grpo_normalisation(normalize, expected):
    # group of 2; env 0 succeeds at chunk 0; env 1 fails over 4 chunks (truncated at the end). No auto-reset.
    rewards = torch.zeros(4, 2, 1)
    rewards[0, 0, 0] = 1.0
    terms = torch.zeros(4, 2, 1, dtype=torch.bool)
    terms[0, 0, 0] = True
    truncs = torch.zeros_like(terms)
    truncs[3, 1, 0] = True
    cfg = AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=2, normalize_advantages=normalize)
    batch = _batch(rewards, terms, truncs, auto_reset=False)
    adv, _ = compute_advantages(batch, cfg)
    # RLinf (never normalises GRPO): (1 - 0.5) / std([1, 0]) = 0.5 / 0.7071 = +-0.7071.
    # rlvla normalised over the 5 masked steps [0.7071, -0.7071 x 4]: mean -0.4243, std 0.5657 -> 2.0, -0.5
    assert float(adv[0, 0]) == pytest.approx(expected[0], abs=1e-4)
    assert float(adv[0, 1]) == pytest.approx(expected[1], abs=1e-4)


# ---- 4. / 5. bootstrap_type -------------------------------------------------------------------------------------


def _gae(rewards, terms, truncs, bootstrap_type):
    values, boot = torch.tensor([[0.5], [0.6]]), torch.tensor([[0.0], [0.7]])
    return generalized_advantage_estimate(
        torch.tensor(rewards).unsqueeze(-1), values, torch.tensor([0.0]), torch.tensor(terms).unsqueeze(-1),
        torch.tensor(truncs).unsqueeze(-1), boot, GAMMA, LAM, bootstrap_type,
    )[0].squeeze(-1)  # fmt: skip


def test_bootstrap_type_always_bootstraps_terminations():
    # r = [0, 1], term = [F, T], V = [.5, .6], V(final) = .7
    # RLinf adds gamma V(final) to the last reward: delta_1 = 1 + .99 * .7 - .6 = 1.093;
    # delta_0 = .99 * .6 - .5 = .094; A_0 = .094 + .99 * .95 * 1.093 = 1.122
    adv = _gae([0.0, 1.0], [False, True], [False, False], "always")
    assert adv.tolist() == pytest.approx([1.12196, 1.093], abs=1e-4)
    # standard: the termination bootstraps nothing: delta_1 = 1 - .6 = .4; A_0 = .094 + .9405 * .4 = .4702
    assert _gae([0.0, 1.0], [False, True], [False, False], "standard").tolist() == pytest.approx([0.4702, 0.4])


def test_time_limit_as_terminal_mode():
    # r = [0, 0], trunc = [F, T], V = [.5, .6], V(final) = .7
    # RLinf without auto-reset (no bootstrap): delta_1 = -.6; A_0 = .094 + .9405 * -.6 = -.4703
    assert _gae([0.0, 0.0], [False, False], [False, True], "none").tolist() == pytest.approx([-0.4703, -0.6], abs=1e-4)
    # rlvla's default bootstraps the time limit: delta_1 = .99 * .7 - .6 = .093; A_0 = .094 + .9405 * .093 = .1815
    std = _gae([0.0, 0.0], [False, False], [False, True], "standard")
    assert std.tolist() == pytest.approx([0.1815, 0.093], abs=1e-4)


def test_bootstrap_type_reaches_gae_from_batch():
    rewards = torch.tensor([[0.0], [1.0]]).unsqueeze(-1)
    terms = torch.tensor([[False], [True]]).unsqueeze(-1)
    batch = _batch(rewards, terms, torch.zeros_like(terms), auto_reset=True, values=torch.tensor([[0.5], [0.6]]),
                   boot=torch.tensor([[0.0], [0.7]]), last=torch.tensor([0.0]))
    cfg = AlgorithmConfig(bootstrap_type="always", normalize_advantages=False)
    adv, _ = compute_advantages(batch, cfg)
    assert adv[:, 0].tolist() == pytest.approx([1.12196, 1.093], abs=1e-4)


# ---- 6. dual clip and the log-ratio clamp -----------------------------------------------------------------------


def test_no_dual_clip_as_rlinf_for_openvla_and_openpi():
    # log r = 2, A = -1. RLinf (clip_ratio_c not passed): max(-A r, -A clip(r)) = max(e^2, 1.2) = 7.389,
    # d loss / d logp = -A r = 7.389. rlvla's default dual clip c = 3 caps the loss at 3|A| = 3 with gradient 0.
    adv = torch.tensor([-1.0])
    kw = dict(clip_ratio_low=0.2, clip_ratio_high=0.2)
    logp = torch.tensor([2.0], requires_grad=True)
    loss, _ = ppo_policy_loss(logp, torch.zeros(1), adv, None, clip_ratio_c=None, logprob_ratio_clamp=None, **kw)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(math.exp(2.0), rel=1e-5)
    assert float(logp.grad) == pytest.approx(math.exp(2.0), rel=1e-5)
    logp = torch.tensor([2.0], requires_grad=True)
    capped, metrics = ppo_policy_loss(logp, torch.zeros(1), adv, None, clip_ratio_c=3.0, logprob_ratio_clamp=20.0, **kw)
    capped.backward()
    assert float(capped.detach()) == pytest.approx(3.0) and float(logp.grad) == 0.0
    assert float(metrics["dual_clip_fraction"]) == 1.0


# ---- 7. openpi entropy level --------------------------------------------------------------------------------------


def test_openpi_entropy_is_a_per_element_mean_at_token_level():
    # RLinf's openpi forward returns entropy.mean(dim=[1, 2, 3]) of [B, steps, chunk, dims] and the worker takes
    # masked_mean over samples, whatever entropy_type says. rlvla's openpi evaluate() combines the chain by its
    # mean ([B, C, A]); entropy_type token_level then gives RLinf's number, chunk_level C x A times it.
    torch.manual_seed(0)
    per_step = torch.rand(6, 4, 5, 7)  # [B, denoise steps, C = 5, A = 7]
    mask = torch.tensor([True, True, False, True, True, True])
    rlinf = per_step.mean(dim=[1, 2, 3])[mask].mean()
    per_action = per_step.mean(1)
    assert float(mean_entropy(per_action, mask, "token_level")) == pytest.approx(float(rlinf), rel=1e-6)
    assert float(mean_entropy(per_action, mask, "chunk_level")) == pytest.approx(35 * float(rlinf), rel=1e-6)


# ---- 8. detach_critic_input ---------------------------------------------------------------------------------------


def _openpi_value_grads(detach: bool) -> dict[str, torch.Tensor | None]:
    from rlvla_cli.config.model_openpi import OpenPIModelConfig
    from rlvla_cli.models.registry import build_policy

    torch.manual_seed(0)
    cfg = OpenPIModelConfig(size="tiny", precision="fp32", action_horizon=6, num_action_chunks=4, max_token_len=24,
                            add_value_head=True, detach_critic_input=detach)
    policy = build_policy(cfg)
    torch.nn.init.normal_(policy.value_head.net[-1].weight, std=0.5)  # a trained head (a fresh one outputs 0)
    gen = torch.Generator().manual_seed(0)
    obs = {
        "main_images": torch.randint(0, 256, (2, 40, 40, 3), generator=gen, dtype=torch.uint8),
        "wrist_images": torch.randint(0, 256, (2, 40, 40, 3), generator=gen, dtype=torch.uint8),
        "states": torch.rand(2, 8, generator=gen),
        "task_descriptions": ["put the cube on the plate", "open the drawer"],
    }
    out = policy.predict(obs)
    policy.zero_grad()
    values = policy.evaluate(out.forward_inputs, compute_entropy=False, compute_values=True).values
    values.sum().backward()  # the value term alone
    return {name: p.grad for name, p in policy.named_parameters()}


def test_detach_critic_input_keeps_the_value_loss_out_of_the_action_expert():
    # RLinf's _compute_value_from_suffix detaches the pooled expert output when detach_critic_input (its pi0 PPO
    # recipes): the value loss trains the value head only. rlvla's default backpropagates into the expert.
    expert = "flow.paligemma_with_expert.gemma_expert.model.layers.0.self_attn.q_proj.weight"
    head = "value_head.net.4.weight"

    def moved(grad):
        return grad is not None and bool(grad.abs().sum() > 0)

    detached = _openpi_value_grads(True)
    assert moved(detached[head]) and not moved(detached[expert])
    attached = _openpi_value_grads(False)
    assert moved(attached[head]) and moved(attached[expert])


# ---- presets that follow an RLinf recipe run RLinf's arithmetic; the config rule behind item 1 -------------------

# preset -> (auto_reset, bootstrap_type, loss_agg, normalize_advantages), from RLinf's examples/embodiment/config
# (the recipe's auto_reset, its bootstrap_type, and what its worker does with them; see docs/porting_from_rlinf.md)
RLINF_PRESETS = {
    "maniskill_ppo_openvlaoft": (True, "always", "masked_mean", True),
    "maniskill_ppo_openvlaoft_quickstart": (True, "always", "masked_mean", True),
    "maniskill_ppo_openvla": (True, "always", "masked_mean", True),
    "maniskill_grpo_openvlaoft": (False, "always", "episode_weighted", False),
    "maniskill_grpo_openvla": (False, "always", "episode_weighted", False),
    "maniskill_ppo_openpi": (True, "always", "masked_mean", True),
    "libero_spatial_ppo_openpi": (False, "none", "episode_weighted", True),
    "libero_spatial_ppo_openpi_quickstart": (False, "none", "episode_weighted", True),
    "libero_10_ppo_openpi": (False, "none", "episode_weighted", True),
    "libero_10_grpo_openpi": (False, "none", "episode_weighted", False),
    "gsenv_ppo_openpi_pi05": (False, "none", "episode_weighted", True),
}


@pytest.mark.parametrize("preset", sorted(RLINF_PRESETS))
def test_rlinf_presets_use_rlinf_arithmetic(preset):
    from rlvla_cli.config.loader import load_config

    cfg = load_config(preset)
    auto_reset, bootstrap, agg, normalize = RLINF_PRESETS[preset]
    algo = cfg.algorithm
    assert (cfg.env.train.auto_reset, algo.bootstrap_type, algo.loss_agg, algo.normalize_advantages) == (
        auto_reset, bootstrap, agg, normalize)
    assert algo.clip_ratio_c is None and algo.logprob_ratio_clamp is None  # RLinf: dual clip only for GR00T
    model = cfg.actor.model
    if model.model_type == "openpi" and model.add_value_head and not model.value_after_vlm:
        assert model.detach_critic_input  # RLinf's pi0 PPO recipes


@pytest.mark.parametrize("overrides,key", [
    (["env.train.auto_reset=true"], "env.train.auto_reset"),
    (["algorithm.adv_type=gae", "algorithm.loss_type=actor_critic", "actor.model.add_value_head=true",
      "env.train.group_size=1", "algorithm.group_size=1", "env.train.auto_reset=true"], "algorithm.loss_agg"),
])
def test_one_episode_per_env_rule(overrides, key):
    from rlvla_cli.config.loader import load_config
    from rlvla_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("maniskill_grpo_openvlaoft", overrides)

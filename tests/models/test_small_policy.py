"""The small policy: rollout / recompute agreement, Gaussian math, LoRA, sync, saving, speed budget."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from rlvla_cli.config.model import SmallModelConfig
from rlvla_cli.errors import UserError
from rlvla_cli.models.base import SamplingParams
from rlvla_cli.models.registry import build_policy, count_parameters, load_policy
from rlvla_cli.models.small import gaussian_entropy, gaussian_logprob, squash, squash_log_det
from rlvla_cli.models.text_encoder import HashWordTokenizer


def _obs(batch=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "main_images": torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=g),
        "states": torch.randn(batch, 3, generator=g),
        "task_descriptions": ["pick up the red block", "grasp the blue cube", "get the green one", "x"][:batch],
    }


def _build(**kw):
    torch.manual_seed(0)
    base = dict(state_dim=3, add_value_head=True, num_action_chunks=2)
    base.update(kw)
    return build_policy(SmallModelConfig(**base))


@pytest.mark.parametrize("squash_kind", ["clip", "tanh"])
@pytest.mark.parametrize("value_type", ["chunk_level", "action_level"])
def test_predict_then_evaluate_same_logprobs(squash_kind, value_type):
    policy = _build(action_squash=squash_kind, value_type=value_type)
    out = policy.predict(_obs(), "train", SamplingParams(temperature=0.7))
    assert out.actions.shape == (4, 2, 7) and out.logprobs.shape == (4, 2, 7)
    assert out.values.shape == (4, 1 if value_type == "chunk_level" else 2)
    assert torch.all(out.actions.abs() <= 1.0)
    ev = policy.evaluate(out.forward_inputs)
    torch.testing.assert_close(ev.logprobs, out.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ev.values, out.values, atol=1e-5, rtol=0)
    assert ev.entropy.shape == (4, 2, 7)


def test_gaussian_math_by_hand():
    # log N(1; 0, e^0) = -1/2 - log sqrt(2 pi) = -1.4189385
    assert gaussian_logprob(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0)).item() == pytest.approx(-1.4189385)
    # entropy of N(0, 1) = 0.5 (1 + log 2 pi) = 1.4189385
    assert gaussian_entropy(torch.tensor(0.0)).item() == pytest.approx(1.4189385)
    raw = torch.tensor([0.3, -2.0])
    expected = torch.log(1 - torch.tanh(raw) ** 2)  # log |d tanh / dx|
    torch.testing.assert_close(squash_log_det(raw, "tanh"), expected)
    assert torch.equal(squash(torch.tensor([2.0, -0.5]), "clip"), torch.tensor([1.0, -0.5]))


def test_greedy_is_the_mean_and_temperature_scales_std():
    policy = _build()
    a, b = policy.predict(_obs(), "eval"), policy.predict(_obs(), "eval")
    assert torch.equal(a.actions, b.actions)
    # at the mean, each dim's log-prob is -log_std - log sqrt(2 pi), with log_std = init -0.5 + log T
    expected = 0.5 - 0.5 * math.log(2 * math.pi) - math.log(2.0)
    hot = policy.predict(_obs(), "train", SamplingParams(do_sample=False, temperature=2.0))
    torch.testing.assert_close(hot.logprobs, torch.full_like(hot.logprobs, expected), atol=1e-5, rtol=0)


def test_hash_tokenizer_is_stable_and_pads():
    tok = HashWordTokenizer(1024, 4)
    ids = tok(["Pick up the RED block!", ""])
    assert ids.shape == (2, 4) and torch.all(ids[1] == 0) and torch.all(ids[0] > 0)
    assert torch.equal(ids[0], tok(["pick up the red"])[0])  # case / punctuation-insensitive, truncated


def test_wrong_state_size_is_a_user_error():
    policy = _build()
    obs = _obs()
    obs["states"] = torch.zeros(4, 5)
    with pytest.raises(UserError, match="state_dim"):
        policy.predict(obs)


def test_lora_trains_only_adapters_and_heads():
    policy = _build(is_lora=True, lora_rank=4)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith("value_head.") or n == "log_std" for n in trainable)
    ev = policy.evaluate(policy.predict(_obs(), "train").forward_inputs)
    (ev.logprobs.sum() + ev.values.sum()).backward()
    assert all(p.grad is None for p in policy.parameters() if not p.requires_grad)
    assert set(policy.sync_state_dict()) == trainable


@pytest.mark.parametrize("lora", [False, True])
def test_save_load_and_sync_round_trip(tmp_path, lora):
    cfg = SmallModelConfig(state_dim=3, add_value_head=True, is_lora=lora, lora_rank=4)
    torch.manual_seed(0)
    policy = build_policy(cfg)
    with torch.no_grad():
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    policy.save_pretrained(tmp_path / "ckpt")
    torch.manual_seed(0)  # LoRA: the frozen base is re-created from the same seed (no base directory here)
    loaded = load_policy(cfg, tmp_path / "ckpt")
    obs = _obs()
    torch.testing.assert_close(policy.predict(obs, "eval").actions, loaded.predict(obs, "eval").actions)
    torch.manual_seed(0)  # same frozen base; the sync carries only what trains
    fresh = build_policy(cfg)
    fresh.load_sync_state_dict(policy.sync_state_dict())
    torch.testing.assert_close(policy.get_values(obs), fresh.get_values(obs))
    with pytest.raises(KeyError):
        fresh.load_sync_state_dict({"nope": torch.zeros(1)})


def test_count_parameters_matches_the_built_model():
    cfg = SmallModelConfig(state_dim=3, add_value_head=True)
    counts = count_parameters(cfg)
    policy = build_policy(cfg)
    assert counts["total"] == sum(p.numel() for p in policy.parameters())
    assert counts["value_head"] == sum(p.numel() for p in policy.value_head_parameters())


def test_image_free_policy_uses_states_and_text_only():
    torch.manual_seed(0)
    policy = build_policy(SmallModelConfig(use_image=False, state_dim=5, num_action_chunks=2))
    assert policy.image is None and not any(name.startswith("image.") for name, _ in policy.named_parameters())
    g = torch.Generator().manual_seed(1)
    obs = {"states": torch.randn(3, 5, generator=g), "task_descriptions": ["push the cube"] * 3}
    out = policy.predict(obs, "train")  # no main_images at all
    assert out.actions.shape == (3, 2, 7) and set(out.forward_inputs) >= {"states", "word_ids"}
    assert "images" not in out.forward_inputs
    torch.testing.assert_close(policy.evaluate(out.forward_inputs).logprobs, out.logprobs, atol=1e-5, rtol=0)
    # an empty image (ManiSkill obs_mode state) is ignored; the states drive the action
    with_empty = policy.predict({**obs, "main_images": torch.zeros(3, 0, 0, 3, dtype=torch.uint8)}, "eval")
    torch.testing.assert_close(with_empty.actions, policy.predict(obs, "eval").actions)
    policy.actor[-1].weight.data.normal_()  # the zero-ish init makes every mean ~0
    moved = policy.predict({**obs, "states": obs["states"] + 1.0}, "eval").actions
    assert not torch.allclose(moved, policy.predict(obs, "eval").actions)


def test_image_policy_without_images_names_the_key():
    policy = _build()
    obs = {**_obs(batch=2), "main_images": torch.zeros(2, 0, 0, 3, dtype=torch.uint8)}
    with pytest.raises(UserError, match="use_image"):
        policy.predict(obs, "train")


def test_image_free_policy_needs_states():
    with pytest.raises(ValueError, match="state_dim"):
        SmallModelConfig(use_image=False, state_dim=0)


def test_values_stay_fp32_under_bf16_autocast_and_the_mean_follows_it():
    """The trainer runs the forward under bf16 autocast on GPUs (with a bf16 rollout copy, as the config rules
    require): the values stay an fp32 computation of the features, the Gaussian mean is the bf16 matmul the
    rollout copy computes too."""
    policy = _build(use_image=False)
    torch.nn.init.normal_(policy.value_head.net[-1].weight, std=0.5)
    torch.nn.init.normal_(policy.actor[-1].weight, std=0.5)
    inputs = policy.predict(_obs(), "train").forward_inputs
    features = policy._features(inputs)
    temperature = inputs["temperature"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, _ = policy._dist(features, temperature)
        values = policy.value_head(features)
    assert mean.dtype == values.dtype == torch.float32
    assert torch.equal(values, policy.value_head(features))
    bf16_head = copy.deepcopy(policy.actor).to(torch.bfloat16)
    assert torch.equal(mean, bf16_head(features.bfloat16()).float().view_as(mean))

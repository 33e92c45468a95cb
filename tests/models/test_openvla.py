"""Tiny OpenVLA / OpenVLA-OFT on the CPU: rollout log-probs equal recomputed ones, sampling, LoRA, saving."""

from __future__ import annotations

import pytest
import torch
from vla_helpers import make_obs, tiny_cfg

from rlvla_cli.models.base import SamplingParams
from rlvla_cli.models.openvla_oft import oft_attention_mask
from rlvla_cli.models.registry import build_policy, load_policy


def _build(kind, **overrides):
    torch.manual_seed(0)
    return build_policy(tiny_cfg(kind, **overrides))


@pytest.fixture(scope="module")
def openvla():
    return _build("openvla", add_value_head=True)


@pytest.fixture(scope="module")
def oft():
    return _build("openvla_oft", add_value_head=True, num_action_chunks=3, use_proprio=True, state_dim=3,
                  value_type="action_level")


@pytest.mark.parametrize("which", ["openvla", "oft"])
def test_predict_then_evaluate_same_logprobs(which, request):
    policy = request.getfixturevalue(which)
    out = policy.predict(make_obs(3), "train", SamplingParams(temperature=1.3))
    chunks = policy.num_action_chunks
    assert out.actions.shape == (3, chunks, 7) and out.logprobs.shape == (3, chunks, 7)
    assert out.values.shape == (3, 1 if which == "openvla" else chunks)
    assert torch.all(out.logprobs <= 0)
    ev = policy.evaluate(out.forward_inputs)
    torch.testing.assert_close(ev.logprobs, out.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ev.values, out.values, atol=1e-5, rtol=0)
    assert ev.entropy.shape == out.logprobs.shape and torch.all(ev.entropy >= 0)
    assert ev.entropy.max() <= torch.log(torch.tensor(256.0)) + 1e-4


@pytest.mark.parametrize("which", ["openvla", "oft"])
def test_padding_does_not_change_results(which, request):
    """A prompt scores the same alone as in a batch with longer prompts (padding is masked, positions follow)."""
    policy = request.getfixturevalue(which)
    obs = make_obs(3)
    out = policy.predict(obs, "eval")
    single = {k: v[2:3] for k, v in out.forward_inputs.items()}
    assert out.forward_inputs["prompt_mask"][0].sum() < out.forward_inputs["prompt_mask"][2].sum()
    torch.testing.assert_close(policy.evaluate(single).logprobs, out.logprobs[2:3], atol=1e-5, rtol=0)
    first = {k: v[0:1] for k, v in out.forward_inputs.items()}
    torch.testing.assert_close(policy.evaluate(first).logprobs, out.logprobs[0:1], atol=1e-5, rtol=0)


def test_greedy_is_argmax_and_deterministic(openvla):
    a = openvla.predict(make_obs(2), "eval")
    b = openvla.predict(make_obs(2), "eval")
    assert torch.equal(a.forward_inputs["action_tokens"], b.forward_inputs["action_tokens"])
    # greedy picks the most likely token: its log-prob is the max over all bins of the recomputed distribution
    ev = openvla.evaluate(a.forward_inputs)
    assert torch.all(ev.logprobs >= torch.log(torch.tensor(1 / 256.0)) - 1e-6)


def test_top_k_restricts_tokens_to_the_action_range(openvla):
    torch.manual_seed(1)
    out = openvla.predict(make_obs(3), "train", SamplingParams(top_k=1))
    greedy = openvla.predict(make_obs(3), "eval")
    assert torch.equal(out.forward_inputs["action_tokens"], greedy.forward_inputs["action_tokens"])
    tokens = out.forward_inputs["action_tokens"]
    vocab_end = openvla.tokenizer.vocab_size
    assert torch.all((tokens >= vocab_end - 256) & (tokens < vocab_end))


def test_oft_mask_is_bidirectional_with_pad_keys_blocked():
    """moojink's fork (transformers-openvla-oft bc339d9, LlamaSdpaAttention): the causal mask's last row repeated,
    i.e. every query sees every non-pad key, before and after it."""
    mask = torch.tensor([[1, 0, 1]])  # <s>, one pad in the prompt, one prompt token
    m = oft_attention_mask(mask, 2, torch.float32)[0, 0] == 0  # True = may attend
    row = torch.tensor([1, 0, 1, 1, 1], dtype=torch.bool)
    assert torch.equal(m, row.expand(5, 5))


@pytest.mark.parametrize("kind", ["openvla", "openvla_oft"])
def test_lora_gradients_reach_only_adapters_and_value_head(kind):
    policy = _build(kind, add_value_head=True, is_lora=True, lora_rank=4)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert any(n.startswith("vla.language_model.") for n in trainable)
    assert {id(p) for p in policy.value_head_parameters()} <= {id(p) for p in policy.parameters() if p.requires_grad}
    out = policy.predict(make_obs(2), "train")
    ev = policy.evaluate(out.forward_inputs)
    (ev.logprobs.sum() + ev.values.sum()).backward()
    for name, p in policy.named_parameters():
        if p.requires_grad:
            continue
        assert p.grad is None, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in policy.named_parameters() if "lora_B" in n)
    sync = policy.sync_state_dict()
    assert set(sync) == trainable


def test_sync_state_dict_round_trip(openvla):
    other = _build("openvla", add_value_head=True)
    with torch.no_grad():
        for p in openvla.parameters():
            p.add_(0.01)
    other.load_sync_state_dict(openvla.sync_state_dict())
    for (n, a), (_, b) in zip(openvla.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    obs = make_obs(2)
    torch.testing.assert_close(openvla.predict(obs, "eval").logprobs, other.predict(obs, "eval").logprobs)


@pytest.mark.parametrize("lora", [False, True])
def test_save_and_load_round_trip(tmp_path, lora):
    cfg = tiny_cfg("openvla_oft", add_value_head=True, is_lora=lora, lora_rank=4, num_action_chunks=2)
    torch.manual_seed(0)
    policy = build_policy(cfg)
    base_dir = tmp_path / "base"
    if lora:  # LoRA saves only the adapter: the base must come from a directory
        base = build_policy(cfg.model_copy(update={"is_lora": False}))
        base.save_pretrained(base_dir)
        policy = build_policy(cfg.model_copy(update={"model_path": str(base_dir)}))
        with torch.no_grad():
            for n, p in policy.named_parameters():
                if "lora_B" in n or n.startswith("value_head."):
                    p.normal_(0, 0.05)
        cfg = cfg.model_copy(update={"model_path": str(base_dir)})
    policy.save_pretrained(tmp_path / "saved")
    names = {p.name for p in (tmp_path / "saved").iterdir()}
    assert ({"adapter_config.json", "adapter_model.safetensors"} <= names) if lora else ("config.json" in names)
    loaded = load_policy(cfg, tmp_path / "saved")
    obs = make_obs(2)
    a, b = policy.predict(obs, "eval"), loaded.predict(obs, "eval")
    assert torch.equal(a.forward_inputs["action_tokens"], b.forward_inputs["action_tokens"])
    torch.testing.assert_close(a.logprobs, b.logprobs)
    torch.testing.assert_close(a.values, b.values)


def test_bf16_runs():
    policy = _build("openvla", precision="bf16", add_value_head=True)
    out = policy.predict(make_obs(2), "train")
    assert out.actions.dtype == torch.float32 and out.values.dtype == torch.float32
    assert next(policy.vla.parameters()).dtype == torch.bfloat16
    assert policy.value_head.net[0].weight.dtype == torch.float32


@pytest.mark.parametrize("kind", ["openvla", "openvla_oft"])
def test_gradient_checkpointing_in_train_mode(kind):
    policy = _build(kind, gradient_checkpointing=True, add_value_head=True)
    policy.train()
    out = policy.predict(make_obs(2), "train")  # the KV cache still works in train mode
    assert policy.training
    ev = policy.evaluate(out.forward_inputs)
    torch.testing.assert_close(ev.logprobs, out.logprobs, atol=1e-5, rtol=0)
    ev.logprobs.sum().backward()
    assert policy.vla.projector.fc1.weight.grad is not None

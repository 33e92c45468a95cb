"""Tiny pi0 / pi0.5 on the CPU: rollout vs recompute log-probs, shapes, gradients under freezing / LoRA."""

from __future__ import annotations

import pytest
import torch
from openpi_helpers import make_obs, tiny_config

from rlvla_cli.models.base import SamplingParams
from rlvla_cli.models.registry import build_policy, count_parameters, load_policy


@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
@pytest.mark.parametrize("method", ["flow_sde", "flow_noise"])
@pytest.mark.parametrize("joint", [False, True], ids=["single", "joint"])
def test_predict_then_evaluate_gives_same_logprobs(build, pi05, method, joint):
    policy = build(pi05=pi05, noise_method=method, joint_logprob=joint, add_value_head=True)
    out = policy.predict(make_obs(), mode="train")
    assert out.actions.shape == out.logprobs.shape == (3, 4, 7)
    assert torch.isfinite(out.logprobs).all() and torch.isfinite(out.actions).all()
    inds = out.forward_inputs["denoise_inds"]
    k = policy.settings.num_steps
    assert k == (5 if pi05 else 4)
    assert inds.shape == ((3, k) if joint else (3, 1)) and int(inds.min()) >= 0 and int(inds.max()) < k
    assert out.forward_inputs["chains"].shape == (3, k + 1, 6, 32)
    ev = policy.evaluate(out.forward_inputs)
    torch.testing.assert_close(ev.logprobs, out.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ev.values, out.values, atol=1e-5, rtol=0)
    assert ev.entropy.shape == (3, 4, 7) and torch.isfinite(ev.entropy).all()
    assert out.values.shape == (3, 1)


def test_chain_ends_in_actions_and_steps_follow_the_transition(build):
    policy = build(noise_method="flow_sde", joint_logprob=True)
    out = policy.predict(make_obs(batch=2), mode="train")
    chain = out.forward_inputs["chains"]
    # Without norm stats the actions are the chain's last state, first C steps and A dims.
    torch.testing.assert_close(out.actions, chain[:, -1, :4, :7])
    assert not torch.allclose(chain[:, 0], chain[:, -1])


def test_greedy_mode_scores_nothing(build):
    policy = build()
    out = policy.predict(make_obs(), mode="eval")
    assert torch.equal(out.logprobs, torch.zeros_like(out.logprobs))
    assert bool((out.forward_inputs["denoise_inds"] == -1).all())
    sampled = policy.predict(make_obs(), sampling=SamplingParams(do_sample=True))
    assert sampled.logprobs.abs().sum() > 0


@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
def test_cached_prefix_equals_joint_attention_pass(build, pi05):
    policy = build(pi05=pi05)
    inputs = policy._obs_inputs(make_obs())
    _, pad, cache = policy._prefix(inputs)
    from rlvla_cli.models.openpi.policy import images_to_pixels

    pixels = [images_to_pixels(inputs[n], 32) for n in ("main_images", "wrist_images")]
    masks = [torch.ones(3, dtype=torch.bool)] * 2
    prefix, pad2 = policy.flow.embed_prefix(pixels, masks, inputs["tokens"], inputs["token_mask"])
    x_t, time = torch.randn(3, 6, 32), torch.tensor([1.0, 0.6, 0.2])
    cached, _ = policy.flow.velocity(cache, inputs["state"], x_t, time)
    joint, _ = policy.flow.velocity_joint(prefix, pad2, inputs["state"], x_t, time)
    torch.testing.assert_close(cached, joint, atol=1e-5, rtol=1e-5)
    assert torch.equal(pad, pad2) and bool(pad.any(dim=1).all())


def test_pi05_state_goes_into_the_prompt(build):
    policy = build(pi05=True)
    obs = make_obs()
    tokens = policy._obs_inputs(obs)["tokens"]
    obs["states"] = obs["states"] + 0.5
    assert not torch.equal(policy._obs_inputs(obs)["tokens"], tokens)
    pi0 = build(pi05=False)
    assert torch.equal(pi0._obs_inputs(obs)["tokens"], pi0._obs_inputs(make_obs())["tokens"])


def _grads_after_loss(policy):
    out = policy.predict(make_obs(), mode="train")
    ev = policy.evaluate(out.forward_inputs)
    loss = ev.logprobs.sum() + (ev.values.sum() if ev.values is not None else 0)
    loss.backward()
    return {name: p.grad for name, p in policy.named_parameters()}


def _has_grad(grad) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


def test_train_expert_only_trains_expert_and_heads(build):
    policy = build(train_expert_only=True, add_value_head=True, noise_method="flow_noise")
    grads = _grads_after_loss(policy)
    vlm = [n for n in grads if n.startswith("flow.paligemma_with_expert.paligemma.")]
    assert vlm and all(grads[n] is None for n in vlm)
    assert not any(p.requires_grad for n, p in policy.named_parameters() if n in vlm)
    assert _has_grad(grads["flow.paligemma_with_expert.gemma_expert.model.layers.0.self_attn.q_proj.weight"])
    assert _has_grad(grads["flow.action_in_proj.weight"]) and _has_grad(grads["flow.action_out_proj.weight"])
    assert _has_grad(grads["noise_head.mlp.4.weight"]) and _has_grad(grads["value_head.net.4.weight"])
    head_ids = {id(p) for p in policy.value_head_parameters()}
    assert all(id(p) not in head_ids for p in policy.policy_parameters())


def test_full_finetune_reaches_the_vlm(build):
    policy = build(train_expert_only=False)
    grads = _grads_after_loss(policy)
    assert _has_grad(grads["flow.paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.up_proj.weight"])
    assert _has_grad(grads["flow.paligemma_with_expert.paligemma.model.vision_tower.encoder.layers.0.mlp.fc1.weight"])


def test_lora_on_the_vlm_only(build):
    policy = build(is_lora=True, train_expert_only=False, add_value_head=True, value_after_vlm=True)
    grads = _grads_after_loss(policy)
    lora = [n for n in grads if "lora_" in n]
    assert lora and all(n.startswith("flow.paligemma_with_expert.paligemma.model.language_model.") for n in lora)
    assert any(_has_grad(grads[n]) for n in lora if "lora_B" in n)
    frozen_vlm = [n for n in grads if n.startswith("flow.paligemma_with_expert.paligemma.") and "lora_" not in n]
    assert frozen_vlm and all(grads[n] is None for n in frozen_vlm)
    assert _has_grad(grads["flow.paligemma_with_expert.gemma_expert.model.layers.1.mlp.down_proj.weight"])
    assert _has_grad(grads["value_head.net.4.weight"])


def test_value_after_vlm_matches_get_values(build):
    policy = build(add_value_head=True, value_after_vlm=True, pi05=True)
    obs = make_obs()
    out = policy.predict(obs)
    torch.testing.assert_close(policy.get_values(obs), out.values)
    policy.value_head.net[-1].bias.data.fill_(0.25)
    assert torch.allclose(policy.get_values(obs), torch.full((3, 1), 0.25))


def test_state_and_norm_stats_bounds(build):
    policy = build(num_images=1)
    obs = make_obs()
    del obs["wrist_images"]
    assert policy.predict(obs).actions.shape == (3, 4, 7)
    two_cams = build(num_images=2)
    from rlvla_cli.errors import UserError

    with pytest.raises(UserError, match="wrist_images"):
        two_cams.predict(obs)


def test_parameter_counts_on_meta_device():
    pi0 = count_parameters(tiny_config(size="full"))
    pi05 = count_parameters(tiny_config(size="full", pi05=True, add_value_head=True))
    # PaliGemma 3B (2.92B) + Gemma-300M expert; the tied LM head is not counted twice.
    assert 3.1e9 < pi0["total"] < 3.4e9
    assert 0.25e9 < pi0["trainable"] < 0.35e9  # train_expert_only: the expert + projections
    assert pi05["total"] > pi0["total"] and pi05["value_head"] > 0


def test_parameter_breakdown_full_pi0():
    from rlvla_cli.models.openpi import count_openpi_parameters

    counts = count_openpi_parameters(tiny_config(size="full", is_lora=True))
    # Gemma 2B: 18 layers x (4 attention mats of 2048 x 2048/256 heads + 3 MLP mats 2048 x 16384) + 257152 x 2048
    assert 2.4e9 < counts["language_model"] < 2.6e9
    assert 0.40e9 < counts["vision"] < 0.43e9  # SigLIP So400m/14 + projector
    assert 0.29e9 < counts["expert"] < 0.32e9  # Gemma-300M without embeddings
    # LoRA rank 8 on 7 linear layers of 18 layers: r (in + out) summed
    per_layer = 8 * ((2048 + 2048) + 2 * (2048 + 256) + (2048 + 2048) + 2 * (2048 + 16384) + (16384 + 2048))
    assert counts["lora"] == 18 * per_layer
    assert counts["trainable"] == counts["lora"] + counts["expert"] + counts["action_head"]


def test_gradient_checkpointing_gives_the_same_gradients(build):
    plain, ckpt = build(train_expert_only=False), build(train_expert_only=False, gradient_checkpointing=True)
    plain.train()
    ckpt.train()
    out = plain.predict(make_obs())
    plain.evaluate(out.forward_inputs).logprobs.sum().backward()
    ckpt.evaluate(out.forward_inputs).logprobs.sum().backward()
    ckpt_params = dict(ckpt.named_parameters())
    for name, param in plain.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(ckpt_params[name].grad, param.grad, atol=1e-6, rtol=1e-5)


def test_save_and_reload_reproduces_logprobs(build, tmp_path):
    policy = build(pi05=True, noise_method="flow_noise", add_value_head=True)
    with torch.no_grad():
        policy.noise_head.mlp[-1].bias.fill_(0.3)
        policy.value_head.net[-1].bias.fill_(-0.5)
    out = policy.predict(make_obs())
    policy.save_pretrained(tmp_path / "ckpt")
    reloaded = load_policy(policy.cfg, tmp_path / "ckpt")
    ev = reloaded.evaluate(out.forward_inputs)
    torch.testing.assert_close(ev.logprobs, out.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ev.values, out.values, atol=1e-5, rtol=0)


def test_lora_adapter_save_and_reload(build, tmp_path):
    build().save_pretrained(tmp_path / "base")  # base weights in openpi layout
    cfg = tiny_config(model_path=str(tmp_path / "base"), is_lora=True, add_value_head=True)
    policy = build_policy(cfg)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
        policy.value_head.net[-1].bias.fill_(0.5)
    out = policy.predict(make_obs())
    policy.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    reloaded = load_policy(cfg, tmp_path / "adapter")
    ev = reloaded.evaluate(out.forward_inputs)
    torch.testing.assert_close(ev.logprobs, out.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ev.values, out.values, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["flow_sde", "flow_noise"])
def test_ppo_update_with_the_shared_trainer_code(build, single_rank_group, method):
    from rlvla_cli.algorithms import RolloutBatch, compute_advantages
    from rlvla_cli.config.actor import ActorConfig
    from rlvla_cli.config.algorithm import AlgorithmConfig
    from rlvla_cli.runtime.trainer import Trainer

    policy = build(noise_method=method, add_value_head=True)
    steps = [policy.predict(make_obs(batch=2, seed=t)) for t in range(2)]
    stack = lambda xs: torch.stack(xs, 0)  # noqa: E731
    batch = RolloutBatch(
        forward_inputs={k: stack([s.forward_inputs[k] for s in steps]) for k in steps[0].forward_inputs},
        old_logprobs=stack([s.logprobs for s in steps]),
        rewards=torch.tensor([[[0.0] * 4, [1.0] * 4], [[1.0] * 4, [0.0] * 4]]),
        terminations=torch.zeros(2, 2, 4, dtype=torch.bool),
        truncations=torch.zeros(2, 2, 4, dtype=torch.bool),
        loss_mask=torch.ones(2, 2, dtype=torch.bool),
        old_values=stack([s.values for s in steps]),
        last_values=torch.zeros(2, 1),
    )
    cfg = AlgorithmConfig()
    compute_advantages(batch, cfg)
    before = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    actor = ActorConfig.model_validate({"micro_batch_size": 2, "global_batch_size": 4, "model": {"model_type": "small"},
                                        "optim": {"lr": 1e-3, "value_lr": 1e-3}, "deepspeed": {"zero_stage": 0}})
    metrics = Trainer(policy, actor, cfg, dp_size=1, device="cpu", total_optimizer_steps=1).train(batch, 0)
    assert metrics["train/skipped_steps"] == 0
    assert metrics["train/actor/approx_kl"] == pytest.approx(0.0, abs=1e-6)  # one step: ratio 1 exactly
    changed = [n for n, p in policy.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert any(n.startswith("flow.paligemma_with_expert.gemma_expert.") for n in changed)
    assert any(n.startswith("value_head.") for n in changed)


def test_behaviour_cloning_loss_fits_a_fixed_chunk(build):
    policy = build(pi05=True, train_expert_only=True)
    obs = make_obs(batch=2)
    actions = torch.linspace(-0.5, 0.5, 2 * 6 * 7).view(2, 6, 7)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    torch.manual_seed(0)
    first = policy.flow_matching_loss(obs, actions)
    for _ in range(30):
        optimizer.zero_grad()
        loss = policy.flow_matching_loss(obs, actions)
        loss.backward()
        optimizer.step()
    torch.manual_seed(0)
    assert policy.flow_matching_loss(obs, actions).item() < 0.5 * first.item()
    assert all(p.grad is None for p in policy.flow.paligemma_with_expert.paligemma.parameters())

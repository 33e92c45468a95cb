"""What the memory model needs to know about a policy config: parameters, trainable share, token counts.

``model_profile(model_cfg)`` reads an ``actor.model`` config (any of small / openvla / openvla_oft /
openpi) and returns a :class:`ModelProfile`. Full-size models use the exact architecture arithmetic of
``model_sizes``; the ``tiny`` / ``small`` presets are counted from the models the ``models`` package builds
(meta device, no memory), see :func:`_built_model_profile`.

Token counts (per sample, assumptions stated):

- OpenVLA: 256 patches per 224 px image (``(image_size / 14)^2``; DINOv2 adds 1 cls + 4 registers),
  LM sequence = BOS + patches + prompt (~20 tokens: "In: What action should the robot take to ...?
  Out:") + action tokens (7; OFT: ``num_action_chunks x action_dim``, decoded in one pass) + 1 proprio
  token when OFT uses it.
- pi0 / pi0.5: ``num_images x 256`` image tokens + ``max_token_len`` text tokens (48 / 200) through the
  VLM once; the expert sees ``action_horizon`` (+1 state token for pi0) tokens per denoising step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlvla_cli.placement import model_sizes as ms
from rlvla_cli.placement.memory import kv_cache_bytes
from rlvla_cli.placement.model_sizes import ModelArch, TransformerStack

OPENVLA_PROMPT_TOKENS = 20


@dataclass(frozen=True)
class GradStack:
    """A stack whose activations are kept for backward: tokens per sample, forward passes per sample."""

    stack: TransformerStack
    tokens: int
    passes: int = 1


@dataclass(frozen=True)
class InferStack:
    """A stack run by the rollout worker: tokens per sample; ``kv_cached`` when its keys/values stay alive."""

    stack: TransformerStack
    tokens: int
    kv_cached: bool


@dataclass(frozen=True)
class ModelProfile:
    """Sizes of one policy config.

    total_params: every parameter, LoRA adapters and heads included.
    trainable_params: what the optimizer updates (adapters + heads under LoRA, the expert under
        ``train_expert_only``, otherwise everything).
    grad_stacks / infer_stacks: activation sources in training / rollout.
    vocab, train_logit_tokens, scored_tokens, sampled_tokens: LM-head logits per sample (0 without one).
    max_layer_params: the largest layer (ZeRO-3 param offload working set: two of them).
    extra_train_activation_bytes: per-sample activations outside the stacks (e.g. pi0's frozen prefix KV).
    """

    name: str
    total_params: int
    trainable_params: int
    grad_stacks: tuple[GradStack, ...] = ()
    infer_stacks: tuple[InferStack, ...] = ()
    vocab: int = 0
    train_logit_tokens: int = 0
    scored_tokens: int = 0
    sampled_tokens: int = 0
    max_layer_params: int = 0
    extra_train_activation_bytes: int = 0
    # measured / predicted activations of LoRA-adapted stacks without checkpointing (see ``openvla_profile``)
    lora_activation_factor: float = 1.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params


def value_head_params(hidden: int, dims: list[int] | tuple[int, ...], outputs: int) -> int:
    """MLP value head ``hidden -> dims... -> outputs`` with biases."""
    return ms.mlp_params([hidden, *dims, outputs])


def value_head_dims(hidden_dim: int = 512) -> tuple[int, int]:
    """``models.value_head.ValueHead``: in -> hidden_dim -> hidden_dim / 4 -> V (GELU)."""
    return hidden_dim, hidden_dim // 4


def _patches(image_size: int, patch: int = 14) -> int:
    return (image_size // patch) ** 2


def _max_layer(arch: ModelArch) -> int:
    return max(s.layer_params() for s in arch.stacks.values())


# OpenVLA-OFT full size, LoRA r 32 on every linear (towers, projector, Llama), bf16 autocast, no checkpointing:
# bench_train on an H200 peaks at 42.8 / 71.0 / 126.9 GiB at micro 8 / 16 / 32 against 35.0 / 54.4 / 93.2 GiB
# predicted: +3.51 GiB per sample measured vs +2.43 predicted (the constant part agrees within 1 GiB), so the
# activation term is scaled by 3.51 / 2.43 (docs/measurements/bench_train_oft_h200_micro_sweep*.json, two runs,
# the same peaks). What the per-layer count misses is not identified yet.
OPENVLA_LORA_ACTIVATION_FACTOR = 1.45


def openvla_profile(cfg: Any, arch: ModelArch | None = None) -> ModelProfile:
    """OpenVLA / OpenVLA-OFT (full size unless ``arch`` is given). LoRA: every linear of the two vision
    towers, the projector and the LM (peft ``all-linear``; the LM head excluded), plus the value head."""
    is_oft = cfg.model_type == "openvla_oft"
    image_size = getattr(cfg, "image_size", 224) or 224
    if arch is None:
        dims = None
        if cfg.size != "full":
            from rlvla_cli.models.presets import openvla_dims

            dims = openvla_dims(cfg.size)
        vocab = getattr(cfg, "vocab_size", None)
        if is_oft:
            arch = ms.openvla_oft_arch(image_size, vocab, cfg.use_proprio, cfg.state_dim, dims)
        else:
            arch = ms.openvla_arch(image_size, vocab, dims)
    llm = arch.stacks["llm"]
    images = 2 if is_oft and getattr(cfg, "use_wrist_image", False) else 1
    patches = _patches(image_size) * images
    action_tokens = cfg.action_dim * (cfg.num_action_chunks if is_oft else 1)
    proprio = 1 if is_oft and getattr(cfg, "use_proprio", False) else 0
    seq = 1 + patches + proprio + OPENVLA_PROMPT_TOKENS + action_tokens
    vision = [k for k in arch.stacks if k.startswith("vision")]
    value = value_head_params(llm.hidden, value_head_dims(), cfg.num_values) if cfg.add_value_head else 0
    lora = arch.lora_params(cfg.lora_rank, [*vision, "llm"], ("projector",)) if cfg.is_lora else 0
    total = arch.total_params() + lora + value
    trainable = lora + value if cfg.is_lora else total
    vision_tokens = {"vision_dino": patches + 5 * images}
    grads = tuple(GradStack(arch.stacks[k], vision_tokens.get(k, patches)) for k in vision) + (GradStack(llm, seq),)
    infer = tuple(InferStack(arch.stacks[k], vision_tokens.get(k, patches), False) for k in vision) + (
        InferStack(llm, seq, kv_cached=not is_oft),
    )
    return ModelProfile(
        name=arch.name, total_params=total, trainable_params=trainable, grad_stacks=grads, infer_stacks=infer,
        vocab=arch.vocab, train_logit_tokens=seq, scored_tokens=action_tokens, sampled_tokens=action_tokens,
        max_layer_params=_max_layer(arch),
        lora_activation_factor=OPENVLA_LORA_ACTIVATION_FACTOR if cfg.is_lora else 1.0,
    )


def openpi_profile(cfg: Any, arch: ModelArch | None = None) -> ModelProfile:
    """pi0 / pi0.5 (full size unless ``arch`` is given).

    Trainable: the expert stack and its projections always; the VLM (SigLIP, projector, Gemma) fully when
    ``train_expert_only`` is false and LoRA is off, through LoRA adapters on the Gemma language model's
    linears when ``is_lora`` (as ``models/openpi`` applies them), frozen otherwise; plus the value head and
    flow_noise's noise head. With a frozen VLM the expert still needs the prefix keys/values
    kept for backward. The expert runs with grad once per scored denoising step (``num_steps`` when
    ``joint_logprob``, else 1).
    """
    pi05 = bool(cfg.pi05)
    dims = None
    if cfg.size != "full" and arch is None:
        from rlvla_cli.models.openpi.presets import get_preset

        dims = get_preset(cfg.size)
    image_size = cfg.image_size or (dims.vision.image_size if dims is not None else 224)
    patch = dims.vision.patch_size if dims is not None else 14
    if arch is None:
        arch = ms.pi0_arch(pi05=pi05, image_size=image_size, model_action_dim=cfg.model_action_dim, dims=dims)
    vlm_stacks = [k for k in arch.stacks if k != "expert"]
    expert = arch.stacks["expert"]
    expert_other = sum(v for k, v in arch.other.items() if k in ms.EXPERT_PARAM_GROUPS)
    image_tokens = cfg.num_images * _patches(image_size, patch)
    prefix = image_tokens + cfg.max_token_len
    expert_tokens = cfg.action_horizon + (0 if pi05 else 1)
    value_in = arch.stacks["llm"].hidden if cfg.value_after_vlm else expert.hidden
    head_dims = value_head_dims(getattr(cfg, "value_head_hidden_dim", 512))
    value = value_head_params(value_in, head_dims, 1) if cfg.add_value_head else 0
    noise = 0
    if cfg.noise_method == "flow_noise":
        noise = ms.mlp_params([expert.hidden, *cfg.noise_head_hidden_dims, cfg.model_action_dim])
    lora = arch.lora_params(cfg.lora_rank, ["llm"]) if cfg.is_lora else 0  # models/openpi: Gemma LM linears only
    total = arch.total_params() + lora + value + noise
    vlm_full = not cfg.train_expert_only and not cfg.is_lora
    trainable = expert.params() + expert_other + value + noise + lora
    if vlm_full:
        trainable = total
    vlm_grads = vlm_full or cfg.is_lora
    passes = cfg.resolved_num_steps if cfg.joint_logprob else 1
    vlm_tokens = {k: image_tokens if k.startswith("vision") else prefix for k in vlm_stacks}
    grads = [GradStack(expert, expert_tokens, passes)]
    llm = arch.stacks["llm"]
    # Each scored pass, every layer's attention concatenates the prefix K/V with the expert's own and keeps that
    # [prefix + expert tokens] K/V for backward (models/openpi/gemma_joint.py; measured on an H200 with bench_train).
    extra = kv_cache_bytes(llm, passes * (prefix + expert_tokens), 1)
    if vlm_grads:
        grads = [GradStack(arch.stacks[k], vlm_tokens[k]) for k in vlm_stacks] + grads
    else:
        extra += kv_cache_bytes(llm, prefix, 1)  # the frozen prefix K/V the passes attend to, kept once (bf16)
    infer = [InferStack(arch.stacks[k], vlm_tokens[k], kv_cached=k == "llm") for k in vlm_stacks]
    infer.append(InferStack(expert, expert_tokens, False))
    return ModelProfile(
        name=arch.name, total_params=total, trainable_params=trainable, grad_stacks=tuple(grads),
        infer_stacks=tuple(infer), max_layer_params=_max_layer(arch), extra_train_activation_bytes=extra,
    )


def model_profile(cfg: Any) -> ModelProfile:
    """Profile of an ``actor.model`` config; see the module docstring for what is assumed."""
    kind = cfg.model_type
    if kind in ("openvla", "openvla_oft"):
        return openvla_profile(cfg)
    if kind == "openpi":
        return openpi_profile(cfg)
    return _built_model_profile(cfg)


def _built_model_profile(cfg: Any) -> ModelProfile:
    """The small CNN policy: counted by the ``models`` package on the meta device (no memory used).

    Its activations (a few MiB) are not modelled; the CUDA context dominates.
    """
    from rlvla_cli.models.registry import count_parameters

    counts = count_parameters(cfg)
    return ModelProfile(
        name=f"{cfg.model_type}-{cfg.size}", total_params=counts["total"], trainable_params=counts["trainable"],
        notes=("activations of the small policy are not modelled (a few MiB next to the CUDA context)",),
    )

"""The OpenVLA network (Prismatic VLM) with the Hugging Face checkpoint's module names, and its config.json.

``PrismaticVLA`` holds ``vision_backbone`` (``featurizer`` DINOv2 + ``fused_featurizer`` SigLIP), ``projector``
(fc1 / fc2 / fc3) and ``language_model`` (``transformers.LlamaForCausalLM``), so the state-dict keys are exactly
those of openvla/openvla-7b (``vision_backbone.featurizer.blocks.0.attn.qkv.weight``, ``projector.fc1.weight``,
``language_model.model.layers.0.self_attn.q_proj.weight``, ``language_model.lm_head.weight``).

Sequence layout (Kim et al. 2024; patches right after ``<s>``): ``[<s>, patches (I * N), extra tokens (OFT
proprio), prompt (left-padded), ...]``; padding is masked and positions follow the mask.
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace

import torch
from torch import nn

from rlvla_cli.errors import AssetError
from rlvla_cli.models.presets import _DINO_L, _SIGLIP_SO400M, LlamaDims, OpenVLADims, ViTDims
from rlvla_cli.models.vision import FusedProjector, FusedVisionBackbone, unused_tower_key

KNOWN_TIMM_TOWERS = {
    "vit_large_patch14_reg4_dinov2.lvd142m": _DINO_L,
    "vit_large_patch14_reg4_dinov2": _DINO_L,
    "vit_so400m_patch14_siglip_224": _SIGLIP_SO400M,
}
HEAD_PREFIXES = ("value_head.", "proprio_projector.")  # policy-level modules saved next to the VLA keys
# What OpenVLA's config.json leaves out of `text_config` (it holds only model_type / pad_token_id / torch_dtype /
# vocab_size): the reference builds it as `CONFIG_MAPPING["llama"](**text_config)` (openvla/openvla
# prismatic/extern/hf/configuration_prismatic.py), i.e. transformers' LlamaConfig defaults (4.40.1, the version
# OpenVLA pins and moojink's fork is): rms_norm_eps 1e-6 (not Llama-2-7b-hf's 1e-5), 2048 positions.
LLAMA_CONFIG_DEFAULTS = {
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": None, "rms_norm_eps": 1e-6, "max_position_embeddings": 2048, "rope_theta": 10000.0,
    "vocab_size": 32000,
}


def llama_config(dims: LlamaDims, pad_token_id: int | None, attn_implementation: str):
    """``transformers.LlamaConfig`` of the language model."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=dims.vocab_size, hidden_size=dims.hidden_size, intermediate_size=dims.intermediate_size,
        num_hidden_layers=dims.num_hidden_layers, num_attention_heads=dims.num_attention_heads,
        num_key_value_heads=dims.num_key_value_heads, rms_norm_eps=dims.rms_norm_eps,
        max_position_embeddings=dims.max_position_embeddings, rope_theta=dims.rope_theta,
        pad_token_id=pad_token_id, tie_word_embeddings=False,
    )
    config._attn_implementation = attn_implementation
    return config


class PrismaticVLA(nn.Module):
    """Vision backbone + projector + Llama; ``embed`` builds the multimodal prefix."""

    def __init__(self, dims: OpenVLADims, image_size: int, pad_token_id: int | None, attn_implementation: str):
        super().__init__()
        from transformers import LlamaForCausalLM

        self.dims = dims
        self.vision_backbone = FusedVisionBackbone(dims.dino, dims.siglip, image_size)
        self.projector = FusedProjector(self.vision_backbone.embed_dim, dims.llm.hidden_size)
        self.language_model = LlamaForCausalLM(llama_config(dims.llm, pad_token_id, attn_implementation))

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.get_input_embeddings()(ids)

    def embed_prefix(
        self, pixel_values: torch.Tensor, bos_id: int, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values ``[B, 6I, S, S]``, prompt ids / mask ``[B, Lp]``, extra ``[B, E, H]`` or None ->
        embeddings ``[B, L, H]`` and mask int64 ``[B, L]`` with ``L = 1 + I*N + E + Lp``."""
        patches = self.projector(self.vision_backbone(pixel_values))
        bos = self.embed_tokens(torch.full_like(prompt_ids[:, :1], bos_id))
        parts = [bos, patches.to(bos.dtype)]
        if extra is not None:
            parts.append(extra.to(bos.dtype))
        parts.append(self.embed_tokens(prompt_ids))
        embeds = torch.cat(parts, dim=1)
        ones = torch.ones(prompt_mask.shape[0], embeds.shape[1] - prompt_mask.shape[1], dtype=prompt_mask.dtype,
                          device=prompt_mask.device)
        return embeds, torch.cat([ones, prompt_mask], dim=1)

    def action_logits(self, hidden: torch.Tensor, action_token_ids: torch.Tensor) -> torch.Tensor:
        """hidden ``[..., H]`` -> fp32 logits over the action tokens ``[..., n_bins]`` (column j = bin j): the
        lm_head rows of those tokens only, so the full-vocabulary logits are never materialised. A LoRA on lm_head
        (RLinf's default targets include it) adds ``scaling * B[rows] @ A @ dropout(h)`` for those rows."""
        head = self.language_model.get_output_embeddings()
        weight = head.weight[action_token_ids]
        logits = hidden.float() @ weight.float().t()
        return logits + lora_rows_delta(head, hidden, action_token_ids)


def lora_rows_delta(head: nn.Module, hidden: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | float:
    """The output of a peft LoRA ``Linear`` (``head``) restricted to ``rows``, without its base weight: fp32
    ``[..., len(rows)]``, or 0.0 when ``head`` carries no active, unmerged adapter (peft ``LoraLayer`` attributes:
    ``lora_A`` / ``lora_B`` / ``lora_dropout`` / ``scaling`` dicts, ``active_adapters``, ``merged``)."""
    lora_a = getattr(head, "lora_A", None)
    if lora_a is None or getattr(head, "disable_adapters", False) or getattr(head, "merged", False):
        return 0.0
    delta: torch.Tensor | float = 0.0
    for name in head.active_adapters:
        if name not in lora_a:
            continue
        a, b = lora_a[name].weight, head.lora_B[name].weight[rows]  # [r, H], [n_rows, r]
        x = head.lora_dropout[name](hidden.to(a.dtype))
        delta = delta + (x.float() @ a.float().t() @ b.float().t()) * head.scaling[name]
    return delta


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """int64 ``[B, L]`` mask -> position ids ``[B, L]`` (cumulative count of real tokens - 1, pads clamped to 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


# ---- config.json <-> dims --------------------------------------------------------------------------------


def _tower_dims(config: dict, index: int, source: str) -> ViTDims:
    custom = (config.get("rlvla_vision_dims") or [None, None])[index]
    if custom:
        return ViTDims(**custom)
    timm_id = (config.get("timm_model_ids") or [None, None])[index]
    if timm_id not in KNOWN_TIMM_TOWERS:
        raise AssetError(f"{source}: vision tower {timm_id!r} is not one OpenVLA uses",
                         fix=f"expected timm_model_ids from {sorted(KNOWN_TIMM_TOWERS)}")
    return KNOWN_TIMM_TOWERS[timm_id]


def text_config_values(config: dict) -> dict:
    """The language model's dimensions the reference runs with: ``text_config``'s keys over transformers'
    ``LlamaConfig`` defaults (``LLAMA_CONFIG_DEFAULTS``); num_key_value_heads None means num_attention_heads."""
    given = config.get("text_config") or {}
    text = {k: given.get(k, default) for k, default in LLAMA_CONFIG_DEFAULTS.items()}
    text["num_key_value_heads"] = text["num_key_value_heads"] or text["num_attention_heads"]
    return text


def dims_from_hf_config(config: dict, source: str) -> tuple[OpenVLADims, int]:
    """(dims, image size) from an OpenVLA config.json (``timm_model_ids``, ``image_sizes``, ``text_config``
    over transformers' LlamaConfig defaults, as the reference). Refuses configs that are not OpenVLA's."""
    if config.get("model_type") not in {"openvla", "prismatic"} or not config.get("use_fused_vision_backbone", True):
        raise AssetError(f"{source} is not an OpenVLA checkpoint (model_type {config.get('model_type')!r})",
                         key="actor.model.model_path",
                         fix="point model_path at an openvla/openvla-7b style directory or change model_type")
    text = text_config_values(config)
    llm = LlamaDims(
        hidden_size=text["hidden_size"], intermediate_size=text["intermediate_size"],
        num_hidden_layers=text["num_hidden_layers"], num_attention_heads=text["num_attention_heads"],
        num_key_value_heads=text["num_key_value_heads"],
        base_vocab_size=0, vocab_size=text["vocab_size"], rms_norm_eps=text["rms_norm_eps"],
        max_position_embeddings=text["max_position_embeddings"], rope_theta=text["rope_theta"],
    )
    image_size = int((config.get("image_sizes") or [224])[0])
    return OpenVLADims(_tower_dims(config, 0, source), _tower_dims(config, 1, source), llm), image_size


def hf_config_from_dims(dims: OpenVLADims, image_size: int, pad_token_id: int, n_bins: int, norm_stats: dict | None):
    """An OpenVLA-style config.json for what we save (plus ``rlvla_vision_dims`` so non-standard sizes reload)."""
    llm = dims.llm
    return {
        "architectures": ["OpenVLAForActionPrediction"], "model_type": "openvla", "use_fused_vision_backbone": True,
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "rlvla_vision_dims": [asdict(dims.dino), asdict(dims.siglip)],
        "image_sizes": [image_size, image_size], "n_action_bins": n_bins, "pad_token_id": pad_token_id,
        "image_resize_strategy": "resize-naive", "arch_specifier": "no-align+fused-gelu-mlp",
        "text_config": {"model_type": "llama", "pad_token_id": pad_token_id, **{
            k: getattr(llm, k) for k in LLAMA_CONFIG_DEFAULTS}},
        "norm_stats": norm_stats,
    }


def checkpoint_key_to_ours(key: str, dims: OpenVLADims) -> str | None:
    """Map a stored OpenVLA / RLinf parameter name to ours (prefix ``vla.``), None to skip it.

    Handles a ``module.`` (DDP / FSDP) or ``base_model.model.`` (merged peft) prefix, timm's raw
    ``ls1.gamma`` (vs OpenVLA's ``scale_factor``), keys OpenVLA never uses (last tower block, final norm,
    SigLIP's attention pool), and stored heads (``proprio_projector.*`` as is, RLinf's ``value_head.mlp.*`` ->
    ``value_head.net.*``)."""
    for prefix in ("module.", "base_model.model."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    key = key.replace(".gamma", ".scale_factor") if ".ls" in key else key
    towers = (("vision_backbone.featurizer.", dims.dino), ("vision_backbone.fused_featurizer.", dims.siglip))
    for tower, tdims in towers:
        if key.startswith(tower) and unused_tower_key(key[len(tower):], tdims.depth):
            return None
    if key.startswith(HEAD_PREFIXES):
        return value_head_key(key)
    return "vla." + key


def value_head_key(key: str) -> str:
    """RLinf's ``ValueHead`` (rlinf/models/embodiment/modules/value_head.py: ``mlp`` = Linear(H, 512), GELU,
    Linear(512, 128), GELU, Linear(128, V, bias=False)) has our layers under ``net``: ``value_head.mlp.i.*`` ->
    ``value_head.net.i.*``; other names unchanged."""
    return re.sub(r"^value_head\.mlp\.", "value_head.net.", key)


def with_vocab(dims: OpenVLADims, base_vocab_size: int) -> OpenVLADims:
    """``dims`` with the tokenizer's base vocabulary size filled in."""
    return replace(dims, llm=replace(dims.llm, base_vocab_size=base_vocab_size))

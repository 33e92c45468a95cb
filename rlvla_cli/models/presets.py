"""Size presets (tiny / mini / small / full) for every architecture this package builds.

``full`` is the published model's real size: OpenVLA / OpenVLA-OFT are DINOv2 ViT-L/14 (with 4 registers) +
SigLIP So400m/14 at 224 px, a fused GELU MLP projector and Llama-2-7B (vocabulary 32000 padded to 32064), about
7.5 B parameters. ``tiny`` runs a CPU test in seconds; ``mini`` trains on 2 CPU cores; ``small`` fits a small
GPU. A checkpoint in ``model_path`` overrides these dimensions with its own config.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rlvla_cli.errors import ConfigError


@dataclass(frozen=True)
class ViTDims:
    """One timm-style ViT tower (see ``models/vision.py``)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_dim: int
    patch_size: int = 14
    class_token: bool = False
    reg_tokens: int = 0
    layer_scale: bool = False
    attn_pool: bool = False  # SigLIP's MAP head: kept in checkpoints, unused by OpenVLA (it takes block n-2)


@dataclass(frozen=True)
class LlamaDims:
    """The Llama language model (``transformers.LlamaConfig`` keys)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    base_vocab_size: int  # tokenizer vocabulary; action tokens are its last n_action_bins ids
    vocab_size: int  # embedding rows (base + pad token, padded to a multiple of 64 like OpenVLA)
    rms_norm_eps: float = 1e-6  # transformers' LlamaConfig defaults, which OpenVLA's config.json leaves in place
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0


@dataclass(frozen=True)
class OpenVLADims:
    """DINOv2 (``featurizer``) + SigLIP (``fused_featurizer``) + projector + Llama."""

    dino: ViTDims
    siglip: ViTDims
    llm: LlamaDims


@dataclass(frozen=True)
class SmallDims:
    """The small CNN policy: conv channels, MLP width, word-embedding width."""

    channels: tuple[int, int]
    hidden_dim: int
    text_dim: int
    value_hidden_dim: int


_DINO_L = ViTDims(1024, 24, 16, 4096, class_token=True, reg_tokens=4, layer_scale=True)
_SIGLIP_SO400M = ViTDims(1152, 27, 16, 4304, attn_pool=True)
_LLAMA2_7B = LlamaDims(4096, 11008, 32, 32, 32, base_vocab_size=32000, vocab_size=32064)

OPENVLA_PRESETS: dict[str, OpenVLADims] = {
    "full": OpenVLADims(_DINO_L, _SIGLIP_SO400M, _LLAMA2_7B),
    "small": OpenVLADims(
        ViTDims(384, 12, 6, 1536, class_token=True, reg_tokens=4, layer_scale=True),
        ViTDims(384, 12, 6, 1536, attn_pool=True),
        LlamaDims(1024, 2816, 8, 16, 16, base_vocab_size=32000, vocab_size=32064),
    ),
    "tiny": OpenVLADims(
        ViTDims(32, 3, 2, 64, class_token=True, reg_tokens=4, layer_scale=True),
        ViTDims(48, 3, 2, 96, attn_pool=True),
        LlamaDims(64, 128, 2, 4, 2, base_vocab_size=1024, vocab_size=1088, max_position_embeddings=1024),
    ),
    # CPU training (docs/results.md): ~2 M parameters; 4 Llama layers, because OFT's action slots enter as
    # identical zero embeddings and only differ once RoPE-rotated queries attend differently (layer 2 on)
    "mini": OpenVLADims(
        ViTDims(64, 4, 4, 256, class_token=True, reg_tokens=4, layer_scale=True),
        ViTDims(64, 4, 4, 256, attn_pool=True),
        LlamaDims(128, 512, 4, 4, 4, base_vocab_size=1024, vocab_size=1088, max_position_embeddings=1024),
    ),
}

SMALL_PRESETS: dict[str, SmallDims] = {
    "tiny": SmallDims(channels=(8, 16), hidden_dim=64, text_dim=16, value_hidden_dim=64),
    "mini": SmallDims(channels=(16, 32), hidden_dim=96, text_dim=24, value_hidden_dim=96),
    "small": SmallDims(channels=(16, 32), hidden_dim=128, text_dim=32, value_hidden_dim=128),
    "full": SmallDims(channels=(32, 64), hidden_dim=256, text_dim=64, value_hidden_dim=256),
}


def _pick(presets: dict, size: str, what: str):
    if size not in presets:
        raise ConfigError(
            f"unknown size preset {size!r} for {what}", key="actor.model.size", fix=f"use one of {sorted(presets)}"
        )
    return presets[size]


def openvla_dims(size: str, vocab_size: int | None = None) -> OpenVLADims:
    """The OpenVLA / OFT preset; ``vocab_size`` (config key) replaces the embedding rows when set."""
    dims = _pick(OPENVLA_PRESETS, size, "openvla")
    if vocab_size is not None:
        if vocab_size < dims.llm.base_vocab_size:
            raise ConfigError(
                f"vocab_size {vocab_size} is smaller than the tokenizer vocabulary {dims.llm.base_vocab_size}",
                key="actor.model.vocab_size",
                fix="leave it unset (null) or use at least the tokenizer size",
            )
        dims = replace(dims, llm=replace(dims.llm, vocab_size=vocab_size))
    return dims


def small_dims(size: str) -> SmallDims:
    """The small-policy preset."""
    return _pick(SMALL_PRESETS, size, "small")

"""Size presets for pi0 / pi0.5 and the transformers configs built from them (no downloads).

``full`` is the published size: PaliGemma 3B (SigLIP So400m/14 at 224 px + Gemma 2B: 18 layers, width 2048,
MLP 16384, 8 heads, 1 KV head, head_dim 256, vocabulary 257152) plus the Gemma-300M action expert (18 layers,
width 1024, MLP 4096, same heads). openpi's joint attention needs the VLM and the expert to agree on heads,
KV heads and head_dim, so every preset keeps them equal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from transformers import GemmaConfig, PaliGemmaConfig

from rlvla_cli.errors import ConfigError

SizeName = Literal["tiny", "mini", "small", "full"]


@dataclass(frozen=True)
class VisionDims:
    """SigLIP vision tower: image_size / patch_size squared patch tokens per image."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    patch_size: int
    image_size: int


@dataclass(frozen=True)
class GemmaDims:
    """One Gemma decoder stack (the VLM's language model or the action expert)."""

    width: int
    mlp_dim: int
    depth: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class OpenPIDims:
    """Every dimension of a pi0 / pi0.5 model."""

    vision: VisionDims
    vlm: GemmaDims
    expert: GemmaDims
    vocab_size: int

    @property
    def image_tokens(self) -> int:
        """Patch tokens per image (256 at full size)."""
        return (self.vision.image_size // self.vision.patch_size) ** 2


PRESETS: dict[str, OpenPIDims] = {
    "full": OpenPIDims(
        vision=VisionDims(1152, 4304, 27, 16, 14, 224),
        vlm=GemmaDims(width=2048, mlp_dim=16384, depth=18, num_heads=8, num_kv_heads=1, head_dim=256),
        expert=GemmaDims(width=1024, mlp_dim=4096, depth=18, num_heads=8, num_kv_heads=1, head_dim=256),
        vocab_size=257152,
    ),
    "small": OpenPIDims(
        vision=VisionDims(384, 1536, 6, 6, 14, 224),
        vlm=GemmaDims(width=512, mlp_dim=2048, depth=6, num_heads=8, num_kv_heads=1, head_dim=64),
        expert=GemmaDims(width=256, mlp_dim=1024, depth=6, num_heads=8, num_kv_heads=1, head_dim=64),
        vocab_size=257152,
    ),
    "tiny": OpenPIDims(
        vision=VisionDims(32, 64, 2, 2, 8, 32),
        vlm=GemmaDims(width=64, mlp_dim=128, depth=2, num_heads=2, num_kv_heads=1, head_dim=16),
        expert=GemmaDims(width=32, mlp_dim=64, depth=2, num_heads=2, num_kv_heads=1, head_dim=16),
        vocab_size=320,
    ),
    # CPU training (docs/results.md): ~1.8 M parameters; deep enough that the prefix carries the object's
    # position to the expert (tiny's 2 layers fit the demos' mean action only); 1024 embedding rows, so the
    # built-in tokenizer merges words (colours are single tokens) instead of spelling them in bytes
    "mini": OpenPIDims(
        vision=VisionDims(64, 256, 4, 4, 8, 32),
        vlm=GemmaDims(width=128, mlp_dim=512, depth=4, num_heads=4, num_kv_heads=1, head_dim=32),
        expert=GemmaDims(width=64, mlp_dim=256, depth=4, num_heads=4, num_kv_heads=1, head_dim=32),
        vocab_size=1024,
    ),
}


def get_preset(size: str) -> OpenPIDims:
    """The dims of preset ``size``; unknown names raise a ConfigError listing the valid ones."""
    if size not in PRESETS:
        raise ConfigError(f"unknown openpi size {size!r}", key="actor.model.size", fix=f"use one of {sorted(PRESETS)}")
    return PRESETS[size]


def with_image_size(dims: OpenPIDims, image_size: int | None) -> OpenPIDims:
    """Dims with the vision tower's input size replaced (must be a multiple of the patch size)."""
    if image_size is None or image_size == dims.vision.image_size:
        return dims
    if image_size % dims.vision.patch_size:
        raise ConfigError(
            f"image_size {image_size} is not a multiple of the patch size {dims.vision.patch_size}",
            key="actor.model.image_size",
        )
    return replace(dims, vision=replace(dims.vision, image_size=image_size))


def check_joint_attention(dims: OpenPIDims) -> None:
    """The VLM and the expert share one attention per layer: depth, heads, KV heads and head_dim must match."""
    a, b = dims.vlm, dims.expert
    if a.depth != b.depth:
        raise ConfigError(f"VLM depth {a.depth} differs from the expert's {b.depth}; joint attention pairs layers")
    if (a.num_heads, a.num_kv_heads, a.head_dim) != (b.num_heads, b.num_kv_heads, b.head_dim):
        raise ConfigError(
            f"VLM heads/kv_heads/head_dim {(a.num_heads, a.num_kv_heads, a.head_dim)} differ from the expert's "
            f"{(b.num_heads, b.num_kv_heads, b.head_dim)}; joint attention needs them equal"
        )


def gemma_config(dims: GemmaDims, vocab_size: int, special_tokens: bool = True) -> GemmaConfig:
    """A transformers GemmaConfig (gelu-tanh MLP, RMSNorm eps 1e-6, RoPE theta 10000) for one stack.

    ``special_tokens=False`` drops pad/bos/eos ids (the expert has no vocabulary)."""
    ids = {} if special_tokens else {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
    return GemmaConfig(
        **ids,
        vocab_size=vocab_size,
        hidden_size=dims.width,
        intermediate_size=dims.mlp_dim,
        num_hidden_layers=dims.depth,
        num_attention_heads=dims.num_heads,
        num_key_value_heads=dims.num_kv_heads,
        head_dim=dims.head_dim,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=8192,
        rms_norm_eps=1e-6,
    )


def paligemma_config(dims: OpenPIDims) -> PaliGemmaConfig:
    """PaliGemma (SigLIP without pooling head + linear projector + Gemma) as openpi builds it."""
    v = dims.vision
    text = gemma_config(dims.vlm, dims.vocab_size).to_dict()
    return PaliGemmaConfig(
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=v.hidden_size,
            intermediate_size=v.intermediate_size,
            num_hidden_layers=v.num_layers,
            num_attention_heads=v.num_heads,
            patch_size=v.patch_size,
            image_size=v.image_size,
            projection_dim=dims.vlm.width,
            vision_use_head=False,
            hidden_act="gelu_pytorch_tanh",
        ),
        text_config=text,
        image_token_id=dims.vocab_size - 1,
        vocab_size=dims.vocab_size,
        projection_dim=dims.vlm.width,
        hidden_size=dims.vlm.width,
    )

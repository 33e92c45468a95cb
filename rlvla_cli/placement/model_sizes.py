"""Parameter counts of the supported policies, computed from their architecture dimensions.

Every count is exact arithmetic over the layer shapes (no checkpoint needed); ``tests/placement`` checks
them against transformers / timm modules built on the meta device. Full-size dimensions:

- Llama-2-7B (OpenVLA's LM): 32 layers, hidden 4096, MLP 11008 (SwiGLU), 32 heads, vocab 32064
  (32000 + 64 padding), untied LM head -> 6,738,939,904 parameters (OpenVLA total 7,541,237,184).
- DINOv2 ViT-L/14 with 4 registers at 224 px: 24 layers, width 1024, MLP 4096 -> ~304M.
- SigLIP So400m/14 at 224 px: 27 layers, width 1152, MLP 4304 -> ~413M (+ ~15M MAP head in timm's model).
- Prismatic fused projector (OpenVLA): 2176 -> 8704 -> 4096 -> 4096 with GELUs.
- Gemma 2B (PaliGemma's LM): 18 layers, width 2048, MLP 16384 (GeGLU), 8 heads, 1 KV head, head_dim 256,
  vocab 257152, tied embeddings. Gemma 300M (pi0's action expert): width 1024, MLP 4096, same heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class TransformerStack:
    """Shape of a stack of transformer layers (no token embedding; those are in ``ModelArch.other``).

    gated_mlp: SwiGLU / GeGLU (gate, up, down: 3 matrices) instead of a 2-matrix GELU MLP.
    bias: linear layers carry biases (ViTs) or not (Llama, Gemma).
    layer_norm: LayerNorm (weight + bias) instead of RMSNorm (weight).
    extra_per_layer: parameters per layer outside linears and norms (DINOv2 LayerScale: 2 x hidden).
    embed_params: patch embedding, position embedding, class/register tokens of a vision tower.
    fused_qkv: one ``h -> q + 2 kv`` linear (timm ViTs) instead of three; same parameters, fewer LoRA ones.
    final_norm: the stack ends with a norm (OpenVLA's truncated towers do not).
    layer_scale: LayerScale after attention and MLP (DINOv2); its inputs are kept for backward.
    norm_saves: what one norm keeps for backward besides its output, in units of ``h`` bf16 elements:
        transformers' Llama RMSNorm 3 (fp32 input 2 + bf16 normalised 1), Gemma's 4 (fp32 input and fp32
        normalised, for its ``1 + weight`` scale), a bf16 LayerNorm 1 (its input). Measured, see memory.py.
    """

    name: str
    num_layers: int
    hidden: int
    intermediate: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    gated_mlp: bool = True
    bias: bool = False
    layer_norm: bool = False
    extra_per_layer: int = 0
    embed_params: int = 0
    fused_qkv: bool = False
    final_norm: bool = True
    layer_scale: bool = False
    norm_saves: int = 3

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(d_in, d_out) of each linear in one layer: q, k, v (or fused qkv), o, then gate, up, down (or fc1, fc2)."""
        h, f = self.hidden, self.intermediate
        if self.fused_qkv:
            attn = [(h, self.q_dim + 2 * self.kv_dim), (self.q_dim, h)]
        else:
            attn = [(h, self.q_dim), (h, self.kv_dim), (h, self.kv_dim), (self.q_dim, h)]
        mlp = [(h, f), (h, f), (f, h)] if self.gated_mlp else [(h, f), (f, h)]
        return attn + mlp

    def layer_params(self) -> int:
        """Weights (+ biases) of the linears, two norms and ``extra_per_layer``."""
        linear = sum(d_in * d_out + (d_out if self.bias else 0) for d_in, d_out in self.linear_shapes())
        norms = 2 * self.hidden * (2 if self.layer_norm else 1)
        return linear + norms + self.extra_per_layer

    def params(self) -> int:
        """All layers + the final norm (when kept) + ``embed_params``."""
        final_norm = self.hidden * (2 if self.layer_norm else 1) if self.final_norm else 0
        return self.num_layers * self.layer_params() + final_norm + self.embed_params

    def lora_params(self, rank: int) -> int:
        """LoRA adapters on every linear of every layer: ``r (d_in + d_out)`` each (A: r x d_in, B: d_out x r)."""
        return self.num_layers * sum(rank * (d_in + d_out) for d_in, d_out in self.linear_shapes())


@dataclass(frozen=True)
class ModelArch:
    """A policy as its transformer stacks plus other parameter groups.

    stacks: by role; roles used by the memory model: ``vision`` (one or two towers), ``llm``, ``expert``.
    other: parameter counts outside the stacks (embeddings, LM head, projector, heads), by name.
    other_linears: (d_in, d_out) of LoRA-adaptable linears among ``other`` (the projector), by name.
    vocab: LM vocabulary size (logits memory); 0 when there is no LM head.
    """

    name: str
    stacks: dict[str, TransformerStack]
    other: dict[str, int] = field(default_factory=dict)
    other_linears: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    vocab: int = 0

    def total_params(self) -> int:
        return sum(s.params() for s in self.stacks.values()) + sum(self.other.values())

    def stack_params(self, names: list[str] | tuple[str, ...]) -> int:
        return sum(self.stacks[n].params() for n in names if n in self.stacks)

    def lora_params(self, rank: int, stacks: list[str] | tuple[str, ...], others: tuple[str, ...] = ()) -> int:
        """LoRA parameters on the linears of ``stacks`` and of the ``other_linears`` named in ``others``."""
        total = sum(self.stacks[n].lora_params(rank) for n in stacks if n in self.stacks)
        for name in others:
            total += sum(rank * (d_in + d_out) for d_in, d_out in self.other_linears.get(name, []))
        return total

    def with_other(self, **extra: int) -> ModelArch:
        return replace(self, other={**self.other, **extra})


def linear_params(d_in: int, d_out: int, bias: bool = True) -> int:
    """Parameters of ``nn.Linear(d_in, d_out)``."""
    return d_in * d_out + (d_out if bias else 0)


def mlp_params(dims: list[int], bias: bool = True) -> int:
    """Parameters of a chain of linears ``dims[0] -> dims[1] -> ... -> dims[-1]``."""
    return sum(linear_params(a, b, bias) for a, b in zip(dims[:-1], dims[1:], strict=True))


def vit_embed_params(hidden: int, patch: int, image_size: int, cls_tokens: int, pos_for_cls: bool) -> int:
    """Patch conv (3 x p x p -> hidden, with bias) + position embeddings + class/register tokens."""
    patches = (image_size // patch) ** 2
    pos = (patches + (cls_tokens if pos_for_cls else 0)) * hidden
    return 3 * patch * patch * hidden + hidden + pos + cls_tokens * hidden


def vit_stack(
    name: str, width: int, depth: int, heads: int, mlp: int, patch: int, image_size: int, *,
    cls_tokens: int = 0, layer_scale: bool = False, fused_qkv: bool = True,
) -> TransformerStack:
    """A ViT tower (LayerNorm, biased GELU MLP); ``cls_tokens`` counts class + register tokens (no position
    embedding for them, as timm's DINOv2-reg and SigLIP); LayerScale adds 2 x width per layer."""
    return TransformerStack(
        name, depth, width, mlp, heads, heads, width // heads, gated_mlp=False, bias=True, layer_norm=True,
        extra_per_layer=2 * width if layer_scale else 0,
        embed_params=vit_embed_params(width, patch, image_size, cls_tokens, pos_for_cls=False), fused_qkv=fused_qkv,
        layer_scale=layer_scale, norm_saves=1,
    )


def dinov2_vit_large(image_size: int = 224) -> TransformerStack:
    """DINOv2 ViT-L/14 with 4 registers (timm ``vit_large_patch14_reg4_dinov2``): cls + 4 register tokens."""
    return vit_stack("dinov2_vit_l14", 1024, 24, 16, 4096, 14, image_size, cls_tokens=5, layer_scale=True)


def siglip_so400m(image_size: int = 224, fused_qkv: bool = False) -> TransformerStack:
    """SigLIP So400m/14 vision tower without the attention-pooling head (PaliGemma: separate q/k/v)."""
    return vit_stack("siglip_so400m_p14", 1152, 27, 16, 4304, 14, image_size, fused_qkv=fused_qkv)


def siglip_map_head_params(hidden: int = 1152, mlp: int = 4304) -> int:
    """timm's SigLIP attention-pooling head: probe, q/kv/proj linears, LayerNorm, MLP (OpenVLA keeps it)."""
    return hidden + linear_params(hidden, hidden) + linear_params(hidden, 2 * hidden) + linear_params(
        hidden, hidden
    ) + 2 * hidden + mlp_params([hidden, mlp, hidden])


def llama_stack(hidden: int = 4096, intermediate: int = 11008, layers: int = 32, heads: int = 32,
                kv_heads: int = 32, name: str = "llama2_7b") -> TransformerStack:
    """A Llama decoder stack (RMSNorm, SwiGLU, no biases); defaults are Llama-2-7B."""
    return TransformerStack(name, layers, hidden, intermediate, heads, kv_heads, hidden // heads)


def llama2_7b_stack() -> TransformerStack:
    return llama_stack()


def gemma_stack(width: int, mlp: int, depth: int, heads: int, kv_heads: int, head_dim: int, *,
                ada_rms: bool = False, name: str = "gemma") -> TransformerStack:
    """A Gemma decoder stack (RMSNorm, GeGLU, no biases). adaRMS (pi0.5's expert) conditions each of the two
    norms on time through ``Linear(w, 3w)`` instead of a weight vector."""
    extra = 2 * (linear_params(width, 3 * width) - width) if ada_rms else 0
    return TransformerStack(name, depth, width, mlp, heads, kv_heads, head_dim, extra_per_layer=extra, norm_saves=4)


def gemma_2b_stack() -> TransformerStack:
    return gemma_stack(2048, 16384, 18, 8, 1, 256, name="gemma_2b")


def gemma_300m_stack(ada_rms: bool = False) -> TransformerStack:
    """pi0's action expert; pi0.5 conditions its RMSNorms on time (adaRMS)."""
    return gemma_stack(1024, 4096, 18, 8, 1, 256, ada_rms=ada_rms, name="gemma_300m")


OPENVLA_VOCAB = 32064  # Llama-2's 32000 tokens + 64 padding (OpenVLA's embedding matrix)
PALIGEMMA_VOCAB = 257152


def _vit_from_dims(name: str, d: Any, image_size: int) -> TransformerStack:
    """A tower from ``models.presets.ViTDims`` (timm layout: fused qkv)."""
    cls_tokens = (1 if d.class_token else 0) + d.reg_tokens
    return vit_stack(name, d.embed_dim, d.depth, d.num_heads, d.mlp_dim, d.patch_size, image_size,
                     cls_tokens=cls_tokens, layer_scale=d.layer_scale)


def truncated_tower(stack: TransformerStack) -> TransformerStack:
    """OpenVLA reads each tower's second-to-last block: the last block and the final norm are never run, and
    ``models/`` builds the towers without them."""
    return replace(stack, num_layers=stack.num_layers - 1, final_norm=False)


def openvla_arch(
    image_size: int = 224, vocab: int | None = None, dims: Any = None, *, as_built: bool = True
) -> ModelArch:
    """OpenVLA: DINOv2 + SigLIP (features concatenated: 1024 + 1152 = 2176) -> projector
    (2176 -> 8704 -> 4096 -> 4096) -> Llama-2-7B. ``dims``: a ``models.presets.OpenVLADims`` for the
    tiny / small presets (None: full size); ``vocab`` overrides the embedding rows.

    ``as_built`` (what occupies GPU memory): towers without their unused last block, final norm and SigLIP's
    MAP head (7,498,156,704 parameters at full size); ``as_built=False`` counts the published checkpoint
    (7,541,237,184 at full size)."""
    if dims is None:
        dino, siglip, llm = dinov2_vit_large(image_size), siglip_so400m(image_size, fused_qkv=True), llama2_7b_stack()
        vocab = vocab or OPENVLA_VOCAB
        map_head = siglip_map_head_params()
    else:
        dino = _vit_from_dims("dinov2", dims.dino, image_size)
        siglip = _vit_from_dims("siglip", dims.siglip, image_size)
        lm = dims.llm
        llm = llama_stack(lm.hidden_size, lm.intermediate_size, lm.num_hidden_layers, lm.num_attention_heads,
                          lm.num_key_value_heads, name="llama")
        vocab = vocab or lm.vocab_size
        map_head = siglip_map_head_params(siglip.hidden, siglip.intermediate) if dims.siglip.attn_pool else 0
    if as_built:
        dino, siglip, map_head = truncated_tower(dino), truncated_tower(siglip), 0
    vision_dim = dino.hidden + siglip.hidden
    projector = [(vision_dim, 4 * vision_dim), (4 * vision_dim, llm.hidden), (llm.hidden, llm.hidden)]
    return ModelArch(
        name="openvla-7b" if dims is None else "openvla",
        stacks={"vision_dino": dino, "vision_siglip": siglip, "llm": llm},
        other={
            "siglip_map_head": map_head,
            "projector": sum(linear_params(a, b) for a, b in projector),
            "embed_tokens": vocab * llm.hidden,
            "lm_head": vocab * llm.hidden,
        },
        other_linears={"projector": projector},
        vocab=vocab,
    )


def openvla_oft_arch(
    image_size: int = 224, vocab: int | None = None, use_proprio: bool = False, state_dim: int = 8, dims: Any = None,
    *, as_built: bool = True,
) -> ModelArch:
    """OpenVLA-OFT: OpenVLA decoding all action tokens in parallel (no new weights) + optional proprio MLP
    (state_dim -> hidden -> hidden)."""
    arch = openvla_arch(image_size, vocab, dims, as_built=as_built)
    hidden = arch.stacks["llm"].hidden
    if use_proprio:
        arch = arch.with_other(proprio_projector=mlp_params([state_dim, hidden, hidden]))
    return replace(arch, name="openvla-oft-7b" if dims is None else "openvla-oft")


def pi0_arch(pi05: bool = False, image_size: int = 224, model_action_dim: int = 32, dims: Any = None) -> ModelArch:
    """pi0 / pi0.5: PaliGemma (SigLIP So400m + linear projector + Gemma 2B) + Gemma 300M action expert.

    Projections (expert width w = 1024): action in/out (32 <-> w); pi0 adds a state projection and an
    action-time MLP (2w -> w -> w); pi0.5 a time MLP (w -> w -> w) and adaRMS norms (the final one too).
    ``dims``: a ``models.openpi.presets.OpenPIDims`` for the tiny / small presets (None: full size).
    """
    if dims is None:
        siglip, gemma, expert = siglip_so400m(image_size), gemma_2b_stack(), gemma_300m_stack(ada_rms=pi05)
        vocab = PALIGEMMA_VOCAB
    else:
        v, a, e = dims.vision, dims.vlm, dims.expert
        siglip = vit_stack("siglip", v.hidden_size, v.num_layers, v.num_heads, v.intermediate_size, v.patch_size,
                           image_size, fused_qkv=False)
        gemma = gemma_stack(a.width, a.mlp_dim, a.depth, a.num_heads, a.num_kv_heads, a.head_dim, name="gemma")
        expert = gemma_stack(e.width, e.mlp_dim, e.depth, e.num_heads, e.num_kv_heads, e.head_dim, ada_rms=pi05,
                             name="gemma_expert")
        vocab = dims.vocab_size
    w = expert.hidden
    other = {
        "multi_modal_projector": linear_params(siglip.hidden, gemma.hidden),
        "embed_tokens": vocab * gemma.hidden,  # tied with the LM head
        "action_in_proj": linear_params(model_action_dim, w),
        "action_out_proj": linear_params(w, model_action_dim),
    }
    if pi05:
        other["time_mlp"] = mlp_params([w, w, w])
        other["expert_final_adarms"] = linear_params(w, 3 * w) - w  # replaces the final norm's weight vector
    else:
        other["state_proj"] = linear_params(model_action_dim, w)
        other["action_time_mlp"] = mlp_params([2 * w, w, w])
    return ModelArch(
        name=("pi05" if pi05 else "pi0") + ("" if dims is None else "-preset"),
        stacks={"vision_siglip": siglip, "llm": gemma, "expert": expert},
        other=other,
        other_linears={"multi_modal_projector": [(siglip.hidden, gemma.hidden)]},
        vocab=vocab,
    )


EXPERT_PARAM_GROUPS = (
    "action_in_proj", "action_out_proj", "state_proj", "action_time_mlp", "time_mlp", "expert_final_adarms",
)
"""``ModelArch.other`` entries that belong to pi0's trainable expert side (``train_expert_only``)."""

"""PaliGemma + Gemma action expert sharing one attention per layer (openpi's "mixture of experts" transformer).

Per layer, the prefix stream (image + text tokens, PaliGemma's language-model weights) and the suffix stream
(state + noisy action tokens, the expert's weights) each normalise their input and compute q/k/v with their own
projections; the q/k/v are concatenated along the sequence and go through one attention with a block mask;
the output is split back and each stream applies its own o_proj, residual, post-norm and MLP.
The building blocks (decoder layers, MLPs, RMSNorm, rotary embedding) are transformers' Gemma modules; this
file is only the joint-attention glue (Black et al. 2024, pi0, Sec. 3; openpi's ``gemma_pytorch.py`` layout,
so parameter names match openpi's PyTorch checkpoints).

pi0.5 conditions the expert's norms on the flow time (adaRMS): ``AdaRMSNorm`` maps the condition to a scale,
shift and residual gate per channel (parameters named ``dense`` as in openpi).

Shapes: B batch, Lp prefix tokens, Ls suffix tokens, W_v / W_e widths of the VLM / expert, nh heads,
nkv KV heads, hd head_dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GemmaModel, PaliGemmaForConditionalGeneration
from transformers.models.gemma.modeling_gemma import apply_rotary_pos_emb

from rlvla_cli.models.openpi.attention import fold_query_mask, grouped_query_attention
from rlvla_cli.models.openpi.presets import OpenPIDims, check_joint_attention, gemma_config, paligemma_config

# openpi's additive mask value: finite so fully-masked (padding) rows give a uniform softmax, never NaN.
MASK_VALUE = -2.3819763e38


class AdaRMSNorm(nn.Module):
    """Gemma RMSNorm modulated by a condition c: y = rms(x) (1 + scale) + shift, gate for the residual.

    ``dense``: Linear(cond_dim, 3 dim) -> (scale, shift, gate). Initialised so that, untrained, it behaves like
    a plain RMSNorm with an ungated residual (scale = shift = 0, gate = 1); checkpoints overwrite it.
    """

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.dense = nn.Linear(cond_dim, 3 * dim)
        with torch.no_grad():
            self.dense.weight.zero_()
            self.dense.bias.zero_()
            self.dense.bias[2 * dim :] = 1.0

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``[B, L, dim]``, cond ``[B, cond_dim]`` -> (normed ``[B, L, dim]``, gate ``[B, 1, dim]``)."""
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        scale, shift, gate = self.dense(cond).unsqueeze(1).chunk(3, dim=-1)
        normed = normed * (1.0 + scale.float()) + shift.float()
        return normed.to(x.dtype), gate.to(x.dtype)


def _norm(module: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(module, AdaRMSNorm):
        if cond is None:
            raise ValueError("an adaRMS norm needs a condition (pi0.5 time embedding)")
        return module(x, cond)
    return module(x), None


def _residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    return x + y if gate is None else x + y * gate


@dataclass
class PrefixCache:
    """Per-layer rotated keys / values of the prefix, ``[B, nkv, Lp, hd]`` each, and its pad mask ``[B, Lp]``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    pad_mask: torch.Tensor

    @property
    def length(self) -> int:
        return self.pad_mask.shape[1]


class GemmaExpert(nn.Module):
    """The action expert: a Gemma decoder stack without token embeddings (``.model`` as in openpi)."""

    def __init__(self, dims: OpenPIDims, adarms: bool):
        super().__init__()
        # vocab_size 1: the expert never embeds tokens; its embedding table is dropped right away.
        self.model = GemmaModel(gemma_config(dims.expert, vocab_size=1, special_tokens=False))
        self.model.embed_tokens = None
        if adarms:
            width = dims.expert.width
            for layer in self.model.layers:
                layer.input_layernorm = AdaRMSNorm(width, width)
                layer.post_attention_layernorm = AdaRMSNorm(width, width)
            self.model.norm = AdaRMSNorm(width, width)


class PaliGemmaWithExpert(nn.Module):
    """PaliGemma (``.paligemma``, transformers) and the Gemma expert (``.gemma_expert``) with joint attention."""

    def __init__(self, dims: OpenPIDims, adarms_expert: bool):
        super().__init__()
        check_joint_attention(dims)
        self.dims = dims
        self.paligemma = PaliGemmaForConditionalGeneration(paligemma_config(dims))
        # The LM head (tied to the token embedding) never runs here; dropping it also keeps meta-device
        # parameter counts right (accelerate's init_empty_weights does not tie).
        self.paligemma.lm_head = None
        self.gemma_expert = GemmaExpert(dims, adarms_expert)
        self.gradient_checkpointing = False

    @property
    def vlm(self) -> GemmaModel:
        """PaliGemma's Gemma language model."""
        return self.paligemma.model.language_model

    @property
    def expert(self) -> GemmaModel:
        return self.gemma_expert.model

    def embed_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """SigLIP + linear projector (no 1/sqrt(width) rescale, as openpi): ``[B, 3, S, S]`` -> ``[B, N, W_v]``."""
        features = self.paligemma.model.vision_tower(pixel_values=pixels).last_hidden_state
        return self.paligemma.model.multi_modal_projector(features)

    def embed_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings times sqrt(W_v) (Gemma's input scaling): ``[B, L]`` -> ``[B, L, W_v]``."""
        weight = self.vlm.embed_tokens.weight
        return F.embedding(token_ids, weight) * math.sqrt(weight.shape[-1])

    def forward(
        self,
        prefix: torch.Tensor | None,
        suffix: torch.Tensor | None,
        attn_mask: torch.Tensor,
        position_ids: torch.Tensor,
        expert_cond: torch.Tensor | None = None,
        prefix_cache: PrefixCache | None = None,
        return_cache: bool = False,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """Run both stacks with shared attention.

        prefix ``[B, Lp, W_v]`` or None; suffix ``[B, Ls, W_e]`` or None; attn_mask bool ``[B, Lq, Lk]`` (True =
        may attend; Lq = tokens given, Lk = cached prefix + tokens given); position_ids ``[B, Lq]``;
        expert_cond ``[B, W_e]`` (pi0.5 adaRMS). With ``prefix_cache`` the suffix also attends to the cached
        prefix keys / values. Returns (prefix_out ``[B, Lp, W_v]``, suffix_out ``[B, Ls, W_e]``, per-layer
        (k, v) of the given tokens when ``return_cache``), outputs after each stack's final norm.
        """
        streams = [(self.vlm, prefix), (self.expert, suffix)]
        streams = [(model, h) for model, h in streams if h is not None]
        reference = streams[0][1]
        cos, sin = self.vlm.rotary_emb(reference, position_ids)
        mask_value = max(MASK_VALUE, torch.finfo(reference.dtype).min)  # fp16 cannot hold openpi's value
        additive = torch.where(attn_mask[:, None], 0.0, mask_value).to(reference.dtype)
        config = self.vlm.config
        additive = fold_query_mask(additive, config.num_attention_heads, config.num_key_value_heads)
        hidden = [h for _, h in streams]
        conds = [expert_cond if model is self.expert else None for model, _ in streams]
        cache: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index in range(len(self.vlm.layers)):
            args = (index, [m for m, _ in streams], hidden, conds, cos, sin, additive, prefix_cache)
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden, kv = torch.utils.checkpoint.checkpoint(self._layer, *args, use_reentrant=False)
            else:
                hidden, kv = self._layer(*args)
            if return_cache:
                cache.append(kv)
        outputs = [_norm(model.norm, h, c)[0] for (model, _), h, c in zip(streams, hidden, conds, strict=True)]
        by_model = {id(model): out for (model, _), out in zip(streams, outputs, strict=True)}
        return by_model.get(id(self.vlm)), by_model.get(id(self.expert)), (cache if return_cache else None)

    def _layer(self, index, models, hidden, conds, cos, sin, additive, prefix_cache):
        """One joint decoder layer; returns (new hidden per stream, (k, v) of the given tokens)."""
        queries, keys, values, gates = [], [], [], []
        for model, h, cond in zip(models, hidden, conds, strict=True):
            layer = model.layers[index]
            normed, gate = _norm(layer.input_layernorm, h, cond)
            attn = layer.self_attn
            shape = (*h.shape[:-1], -1, attn.head_dim)
            queries.append(attn.q_proj(normed).view(shape).transpose(1, 2))
            keys.append(attn.k_proj(normed).view(shape).transpose(1, 2))
            values.append(attn.v_proj(normed).view(shape).transpose(1, 2))
            gates.append(gate)
        q, k = apply_rotary_pos_emb(torch.cat(queries, 2), torch.cat(keys, 2), cos, sin)
        v = torch.cat(values, 2)
        new_kv = (k, v)
        if prefix_cache is not None:
            k = torch.cat([prefix_cache.keys[index], k], 2)
            v = torch.cat([prefix_cache.values[index], v], 2)
        attn0 = models[0].layers[index].self_attn
        out = grouped_query_attention(q, k, v, additive, scale=attn0.scaling)
        out = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
        new_hidden, start = [], 0
        for model, h, cond, gate in zip(models, hidden, conds, gates, strict=True):
            layer = model.layers[index]
            part = out[:, start : start + h.shape[1]].to(layer.self_attn.o_proj.weight.dtype)
            start += h.shape[1]
            h = _residual(h, layer.self_attn.o_proj(part), gate)
            normed, gate2 = _norm(layer.post_attention_layernorm, h, cond)
            new_hidden.append(_residual(h, layer.mlp(normed), gate2))
        return new_hidden, new_kv

    def prefix_cache(
        self, prefix: torch.Tensor, pad_mask: torch.Tensor, attn_mask: torch.Tensor
    ) -> tuple[torch.Tensor, PrefixCache]:
        """Run the prefix alone once: (prefix_out ``[B, Lp, W_v]``, its KV cache for the denoising steps)."""
        positions = torch.cumsum(pad_mask.long(), dim=1) - 1
        out, _, kv = self.forward(prefix, None, attn_mask, positions, return_cache=True)
        return out, PrefixCache([k for k, _ in kv], [v for _, v in kv], pad_mask)

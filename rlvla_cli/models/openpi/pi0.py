"""pi0 / pi0.5 flow model (Black et al. 2024; pi0.5: Physical Intelligence 2025) with openpi's parameter names.

Prefix: SigLIP image tokens (per camera) + embedded prompt tokens, bidirectional among valid tokens.
Suffix (action expert): pi0 = [state token] + H action tokens where each action token is
action_time_mlp(action_in_proj(x_t), sinusoidal(t)); the state token is its own attention block and the
action tokens attend to the prefix, the state and each other. pi0.5 = H action tokens = action_in_proj(x_t),
with the flow time injected through adaRMS norms (time_mlp) and the state carried by the prompt tokens.
The velocity is action_out_proj of the expert output at the action tokens.

The prefix is computed once per observation (``encode_prefix``) and its KV cache reused by every denoising
step (``velocity``); ``velocity_joint`` runs prefix and suffix in one pass (training / parity checks).
Shapes: B batch, Lp prefix tokens, H horizon, D model action width (32), W_v / W_e widths.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rlvla_cli.models.openpi.gemma_joint import PaliGemmaWithExpert, PrefixCache
from rlvla_cli.models.openpi.presets import OpenPIDims


def sinusoidal_time_embedding(
    time: torch.Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0
) -> torch.Tensor:
    """Sine-cosine embedding of flow times ``[B]`` -> ``[B, dim]`` (periods from 4e-3 to 4, as openpi)."""
    if dim % 2:
        raise ValueError(f"time embedding width must be even, got {dim}")
    dtype = torch.float32 if time.device.type == "mps" else torch.float64
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=dtype, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = time.to(dtype)[:, None] * (2 * math.pi / period)[None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def block_attention_mask(pad_mask: torch.Tensor, block_starts: torch.Tensor) -> torch.Tensor:
    """big_vision's mask: token i attends token j iff cumsum(starts)[j] <= cumsum(starts)[i] and both are real.

    pad_mask bool ``[B, L]``; block_starts int ``[B, L]`` (1 opens a new causal block) -> bool ``[B, L, L]``.
    """
    cum = torch.cumsum(block_starts.long(), dim=1)
    return (cum[:, None, :] <= cum[:, :, None]) & pad_mask[:, None, :] & pad_mask[:, :, None]


class OpenPIFlowModel(nn.Module):
    """The network: ``paligemma_with_expert`` + action / state / time projections (openpi names)."""

    def __init__(self, dims: OpenPIDims, pi05: bool, action_horizon: int, model_action_dim: int = 32):
        super().__init__()
        self.dims, self.pi05, self.action_horizon = dims, pi05, action_horizon
        width = dims.expert.width
        self.paligemma_with_expert = PaliGemmaWithExpert(dims, adarms_expert=pi05)
        self.action_in_proj = nn.Linear(model_action_dim, width)
        self.action_out_proj = nn.Linear(width, model_action_dim)
        if pi05:
            self.time_mlp_in = nn.Linear(width, width)
            self.time_mlp_out = nn.Linear(width, width)
        else:
            self.state_proj = nn.Linear(model_action_dim, width)
            self.action_time_mlp_in = nn.Linear(2 * width, width)
            self.action_time_mlp_out = nn.Linear(width, width)

    @property
    def dtype(self) -> torch.dtype:
        return self.action_in_proj.weight.dtype

    def embed_prefix(
        self,
        images: list[torch.Tensor],
        image_masks: list[torch.Tensor],
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images: per camera ``[B, 3, S, S]`` in [-1, 1]; image_masks per camera bool ``[B]``; tokens / mask
        ``[B, Lt]`` -> (embeddings ``[B, Lp, W_v]``, pad mask bool ``[B, Lp]``)."""
        embs, pads = [], []
        for image, valid in zip(images, image_masks, strict=True):
            emb = self.paligemma_with_expert.embed_image(image.to(self.dtype))
            embs.append(emb)
            pads.append(valid[:, None].expand(emb.shape[0], emb.shape[1]))
        embs.append(self.paligemma_with_expert.embed_tokens(tokens).to(self.dtype))
        pads.append(token_mask.bool())
        return torch.cat(embs, 1), torch.cat(pads, 1)

    def encode_prefix(self, prefix: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, PrefixCache]:
        """VLM pass over the prefix: (output ``[B, Lp, W_v]``, KV cache for the denoising steps)."""
        attn = block_attention_mask(pad_mask, torch.zeros_like(pad_mask, dtype=torch.long))
        return self.paligemma_with_expert.prefix_cache(prefix, pad_mask, attn)

    def embed_suffix(
        self, state: torch.Tensor, x_t: torch.Tensor, time: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """state ``[B, D]``, x_t ``[B, H, D]``, time ``[B]`` -> (embeddings ``[B, Ls, W_e]``, pad ``[B, Ls]``,
        block starts ``[B, Ls]``, adaRMS condition ``[B, W_e]`` or None)."""
        batch, horizon = x_t.shape[:2]
        width = self.action_in_proj.out_features
        time_emb = sinusoidal_time_embedding(time, width).to(self.dtype)
        action_emb = self.action_in_proj(x_t.to(self.dtype))
        starts = [1] + [0] * (horizon - 1)
        if self.pi05:
            cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(time_emb))))
            embs = action_emb
        else:
            fused = torch.cat([action_emb, time_emb[:, None].expand_as(action_emb)], dim=-1)
            tokens = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(fused)))
            state_emb = self.state_proj(state.to(self.dtype))[:, None]
            embs, cond, starts = torch.cat([state_emb, tokens], 1), None, [1] + starts
        pad = torch.ones(batch, embs.shape[1], dtype=torch.bool, device=x_t.device)
        block_starts = torch.tensor(starts, device=x_t.device).expand(batch, -1)
        return embs, pad, block_starts, cond

    def velocity(
        self, cache: PrefixCache, state: torch.Tensor, x_t: torch.Tensor, time: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One denoising step on the cached prefix: (velocity float32 ``[B, H, D]``, expert output ``[B, H, W_e]``)."""
        suffix, pad, starts, cond = self.embed_suffix(state, x_t, time)
        batch, length = pad.shape
        to_prefix = cache.pad_mask[:, None, :].expand(batch, length, cache.length)
        mask = torch.cat([to_prefix, block_attention_mask(pad, starts)], dim=2)
        positions = cache.pad_mask.sum(1, keepdim=True) + torch.cumsum(pad.long(), 1) - 1
        _, out, _ = self.paligemma_with_expert(None, suffix, mask, positions, expert_cond=cond, prefix_cache=cache)
        out = out[:, -self.action_horizon :]
        return self.action_out_proj(out).float(), out

    def velocity_joint(
        self, prefix: torch.Tensor, prefix_pad: torch.Tensor, state: torch.Tensor, x_t: torch.Tensor, time: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix and suffix in one joint pass (flow-matching training); same result as encode_prefix + velocity."""
        suffix, pad, starts, cond = self.embed_suffix(state, x_t, time)
        pad_all = torch.cat([prefix_pad, pad], 1)
        starts_all = torch.cat([torch.zeros_like(prefix_pad, dtype=torch.long), starts], 1)
        mask = block_attention_mask(pad_all, starts_all)
        positions = torch.cumsum(pad_all.long(), 1) - 1
        _, out, _ = self.paligemma_with_expert(prefix, suffix, mask, positions, expert_cond=cond)
        out = out[:, -self.action_horizon :]
        return self.action_out_proj(out).float(), out

    def flow_matching_loss(
        self,
        prefix: torch.Tensor,
        prefix_pad: torch.Tensor,
        state: torch.Tensor,
        actions: torch.Tensor,
        noise: torch.Tensor | None = None,
        time: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-element SFT loss ``[B, H, D]``: || v(x_t, t) - (noise - actions) ||^2, x_t = t noise + (1 - t) a.

        time defaults to openpi's Beta(1.5, 1) * 0.999 + 0.001 draw.
        """
        noise = torch.randn_like(actions) if noise is None else noise
        if time is None:
            beta = torch.distributions.Beta(torch.tensor(1.5), torch.tensor(1.0))
            time = (beta.sample((actions.shape[0],)) * 0.999 + 0.001).to(actions.device)
        t = time[:, None, None]
        x_t = t * noise + (1 - t) * actions
        v, _ = self.velocity_joint(prefix, prefix_pad, state, x_t, time)
        return F.mse_loss(v, noise - actions, reduction="none")

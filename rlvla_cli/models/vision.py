"""OpenVLA's fused vision backbone: DINOv2 (``featurizer``) + SigLIP (``fused_featurizer``) ViT towers whose
patch features are concatenated channel-wise, and the fused GELU MLP projector.

The towers are timm ``VisionTransformer``s in OpenVLA; they are re-declared here with timm's exact parameter
names (``patch_embed.proj``, ``cls_token``, ``reg_token``, ``pos_embed``, ``blocks.i.{norm1, attn.qkv, attn.proj,
ls1.scale_factor, norm2, mlp.fc1, mlp.fc2, ls2.scale_factor}``), because timm >= 0.9 cannot be imported where
torchvision is absent or broken (timm.layers imports torchvision.ops at import time) and the CPU machines that
run our tests have no working torchvision. OpenVLA renames LayerScale's ``gamma`` to ``scale_factor`` (HF
rewrites names containing "gamma"); we use that name. OpenVLA reads each tower's output after block
``depth - 2`` (timm ``get_intermediate_layers(n={depth - 2})``), patch tokens only, so the last block, the final
norm and SigLIP's attention-pool head never affect the output: they are not built, and their checkpoint keys
are skipped on load (``unused_tower_key``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rlvla_cli.models.presets import ViTDims

DINO_MEAN, DINO_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.scale_factor = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


class Block(nn.Module):
    """Pre-norm ViT block: x + ls1(attn(norm1 x)); x + ls2(mlp(norm2 x))."""

    def __init__(self, dims: ViTDims):
        super().__init__()
        d = dims.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, dims.num_heads)
        self.ls1 = LayerScale(d) if dims.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, dims.mlp_dim)
        self.ls2 = LayerScale(d) if dims.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class ViTTower(nn.Module):
    """images ``[B, 3, H, W]`` (normalised) -> patch features after block ``depth - 2`` ``[B, N, D]``."""

    def __init__(self, dims: ViTDims, image_size: int):
        super().__init__()
        grid = image_size // dims.patch_size
        self.num_patches = grid * grid
        self.embed_dim = dims.embed_dim
        self.num_prefix = int(dims.class_token) + dims.reg_tokens
        self.patch_embed = PatchEmbed(dims.patch_size, dims.embed_dim)
        if dims.class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dims.embed_dim))
        if dims.reg_tokens:
            self.reg_token = nn.Parameter(torch.zeros(1, dims.reg_tokens, dims.embed_dim))
        # pos_embed covers the patches only (timm: no_embed_class for DINOv2-reg; SigLIP has no class token)
        self.pos_embed = nn.Parameter(torch.randn(1, self.num_patches, dims.embed_dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dims) for _ in range(dims.depth - 1))
        self.gradient_checkpointing = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images) + self.pos_embed
        prefix = [t.expand(x.shape[0], -1, -1) for t in (getattr(self, "cls_token", None),
                                                          getattr(self, "reg_token", None)) if t is not None]
        x = torch.cat([*prefix, x], dim=1)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x[:, self.num_prefix:]


def unused_tower_key(name: str, depth: int) -> bool:
    """Checkpoint keys of a tower (relative to it) that OpenVLA never uses: last block, final norm, heads."""
    return (
        name.startswith(f"blocks.{depth - 1}.")
        or name.split(".")[0] in {"norm", "fc_norm", "attn_pool", "head", "head_drop", "norm_pre"}
    )


class FusedVisionBackbone(nn.Module):
    """``featurizer`` (DINOv2) and ``fused_featurizer`` (SigLIP); pixel_values ``[B, 6 * I, H, W]`` (I images,
    DINOv2-normalised channels then SigLIP-normalised ones per image) -> ``[B, I * N, D_dino + D_siglip]``."""

    def __init__(self, dino: ViTDims, siglip: ViTDims, image_size: int):
        super().__init__()
        self.featurizer = ViTTower(dino, image_size)
        self.fused_featurizer = ViTTower(siglip, image_size)
        self.embed_dim = dino.embed_dim + siglip.embed_dim
        self.num_patches = self.featurizer.num_patches

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        outs = []
        for image in pixel_values.split(6, dim=1):
            dino_in, siglip_in = image.split(3, dim=1)
            outs.append(torch.cat([self.featurizer(dino_in), self.fused_featurizer(siglip_in)], dim=2))
        return torch.cat(outs, dim=1)


class FusedProjector(nn.Module):
    """OpenVLA's fused projector: fc1 (D -> 4D), GELU, fc2 (4D -> llm), GELU, fc3 (llm -> llm)."""

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1, self.act_fn2 = nn.GELU(), nn.GELU()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act_fn2(self.fc2(self.act_fn1(self.fc1(patches)))))


def preprocess_images(images: torch.Tensor, image_size: int, center_crop: bool, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> pixel_values ``[B, 6, S, S]``: resized (bilinear, antialiased) to
    ``image_size``, optionally the central 90% of the area first (OpenVLA's crop for augmented models), then
    normalised for DINOv2 (ImageNet mean / std) and SigLIP (0.5 / 0.5) and stacked channel-wise."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    if center_crop:
        h, w = x.shape[-2:]
        scale = math.sqrt(0.9)
        ch, cw = round(h * scale), round(w * scale)
        top, left = (h - ch) // 2, (w - cw) // 2
        x = x[..., top:top + ch, left:left + cw]
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    dino = (x - x.new_tensor(DINO_MEAN).view(1, 3, 1, 1)) / x.new_tensor(DINO_STD).view(1, 3, 1, 1)
    siglip = (x - x.new_tensor(SIGLIP_MEAN).view(1, 3, 1, 1)) / x.new_tensor(SIGLIP_STD).view(1, 3, 1, 1)
    return torch.cat([dino, siglip], dim=1).to(dtype)

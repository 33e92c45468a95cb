"""What each stored tensor is (its group) and why a tensor the loader skips is skipped.

Whether a tensor is skipped is decided by the loaders' own mapping functions (``load_check``); this module only
names things for the report. Names follow the checkpoints: OpenVLA's HF layout (openvla/openvla
``prismatic/extern/hf/modeling_prismatic.py``), openpi's ``PI0Pytorch`` (``models_pytorch/pi0_pytorch.py``),
RLinf's heads (``rlinf/models/embodiment/modules/value_head.py``), moojink/openvla-oft's extra files.
"""

from __future__ import annotations

import re

_WRAPPERS = ("module.", "_orig_mod.", "base_model.model.")

# (prefix after wrapper prefixes, group); first match wins, so longer prefixes come first
_OPENVLA_GROUPS = (
    ("vision_backbone.featurizer.", "vision tower (DINOv2)"),
    ("vision_backbone.fused_featurizer.", "vision tower (SigLIP)"),
    ("projector.", "projector"),
    ("language_model.lm_head.", "lm_head"),
    ("language_model.", "language model (Llama)"),
    ("value_head.", "value head"),
    ("proprio_projector.", "proprio projector"),
    ("action_head.", "action head (continuous)"),
)
_PI = "paligemma_with_expert."
_OPENPI_GROUPS = (
    (_PI + "paligemma.model.vision_tower.", "vision tower (SigLIP)"),
    (_PI + "paligemma.model.multi_modal_projector.", "projector"),
    (_PI + "paligemma.model.language_model.", "language model (Gemma)"),
    (_PI + "paligemma.lm_head.", "lm_head"),
    (_PI + "gemma_expert.lm_head.", "action expert lm_head"),
    (_PI + "gemma_expert.", "action expert (Gemma)"),
    ("action_in_proj.", "action projections"),
    ("action_out_proj.", "action projections"),
    ("state_proj.", "state projection (pi0)"),
    ("action_time_mlp_", "time MLP (pi0)"),
    ("time_mlp_", "time MLP (pi0.5, adaRMS)"),
    ("value_head.", "value head"),
    ("noise_head.", "noise head"),
)


def strip_wrappers(key: str) -> str:
    """Drop DDP / torch.compile / merged-peft prefixes (and LeRobot's ``model.`` before openpi names)."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPERS:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    if key.startswith("model.") and key[len("model."):].startswith((_PI, "action_", "state_proj", "time_mlp_")):
        key = key[len("model."):]
    return key


def group_of(key: str, family: str) -> str:
    """The report group of a stored tensor name (``family``: "openvla" or "openpi"; others: "weights")."""
    name = strip_wrappers(key)
    if ".lora_" in name or name.startswith("lora_"):
        return "LoRA adapters"
    table = _OPENVLA_GROUPS if family == "openvla" else _OPENPI_GROUPS if family == "openpi" else ()
    for prefix, group in table:
        if name.startswith(prefix):
            return group
    return "value head" if name.startswith("value_head.") else "other"


_LAST_BLOCK = re.compile(r"\.blocks\.(\d+)\.")


def ignore_reason(key: str) -> str:
    """Why the loader skips ``key`` (the skip itself is the loader's decision), in a few words."""
    name = strip_wrappers(key)
    if "rotary_emb.inv_freq" in name:
        return "rotary inv_freq buffer: recomputed from the config"
    if name.startswith("vision_backbone."):
        rest = name.split(".", 2)[2] if name.count(".") >= 2 else name
        head = rest.split(".")[0]
        if _LAST_BLOCK.search("." + rest):
            return "last vision-tower block: OpenVLA reads the second-to-last block's patches"
        if head in {"norm", "fc_norm", "norm_pre"}:
            return "final tower norm: after the block OpenVLA reads"
        if head in {"attn_pool", "head", "head_drop"}:
            return "SigLIP attention-pool head: OpenVLA uses patch features, not the pooled one"
    if name.startswith(_PI + "gemma_expert.lm_head"):
        return "the action expert's lm_head: the expert outputs actions, never tokens"
    if name.startswith(_PI + "paligemma.lm_head"):
        return "PaliGemma's lm_head: tied to embed_tokens (fills it when the embedding is absent)"
    if name.startswith(("value_head.", "noise_head.")):
        return "RL head the configured policy does not take (rlvla builds its own, fresh)"
    if name.startswith("proprio_projector."):
        return "proprio projector: the config has use_proprio false"
    return "not part of the configured model"

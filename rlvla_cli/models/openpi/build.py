"""Registry builder for ``model_type: openpi``: weights, freezing, LoRA, precision (saving: ``saving.py``).

Trainable parameters: with ``train_expert_only`` the whole PaliGemma VLM is frozen (vision tower, projector,
language model); the expert, the action / state / time projections, the noise head and the value head train.
With ``is_lora`` rank-r adapters (peft) go into the VLM's language-model linear layers (RLinf: LoRA on the VLM
only) and every base VLM weight is frozen, whatever ``train_expert_only`` says; the expert still trains fully.
"""

from __future__ import annotations

import torch

from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.models.base import PRECISION_DTYPES
from rlvla_cli.models.openpi.checkpoint import load_openpi_checkpoint, stored_vocab_rows
from rlvla_cli.models.openpi.norm_stats import find_norm_stats, load_norm_stats
from rlvla_cli.models.openpi.policy import OpenPIPolicy
from rlvla_cli.models.openpi.presets import get_preset
from rlvla_cli.models.openpi.saving import lora_module, save_openpi_policy  # noqa: F401 (re-exported)
from rlvla_cli.models.openpi.state_tokens import PromptTokenizer, byte_level_tokenizer, load_tokenizer
from rlvla_cli.models.registry import register_policy

OPENPI_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def freeze_vlm(policy: OpenPIPolicy) -> None:
    """Freeze every PaliGemma parameter (LoRA adapters added later stay trainable)."""
    for param in policy.flow.paligemma_with_expert.paligemma.parameters():
        param.requires_grad = False


def _apply_lora(policy: OpenPIPolicy, cfg: OpenPIModelConfig, device: str) -> None:
    from rlvla_cli.models.lora import inject_lora, load_adapter, load_heads, lora_config_for

    policy.lora_config = lora_config_for(cfg, OPENPI_LORA_TARGETS, cfg.model_path)
    freeze_vlm(policy)
    inject_lora(lora_module(policy), policy.lora_config)
    if cfg.lora_path and device != "meta":
        load_adapter(lora_module(policy), cfg.lora_path)
        load_heads(policy, cfg.lora_path)


@register_policy("openpi")
def build_openpi_policy(cfg: OpenPIModelConfig, device: str) -> OpenPIPolicy:
    """Random init of the ``size`` preset, or the openpi checkpoint in ``model_path``; then freezing / LoRA."""
    from rlvla_cli.models.lora import load_heads

    meta = device == "meta"
    if meta:  # parameter counting: read no files
        tok = byte_level_tokenizer()
        tokenizer, stats = PromptTokenizer(tok, tok.token_to_id("<bos>"), tok.get_vocab_size()), load_norm_stats(None)
    else:
        tokenizer = load_tokenizer(cfg.model_path, cfg.tokenizer_path, get_preset(cfg.size).vocab_size)
        stats = load_norm_stats(find_norm_stats(cfg.model_path, cfg.norm_stats_path, cfg.norm_stats_key))
    vocab_rows = stored_vocab_rows(cfg.model_path) if cfg.model_path and not meta else None
    # Allocate (and randomly initialise) directly on the target device: a 3B model initialised on the CPU is slow.
    with torch.device("cpu" if meta else device):
        policy = OpenPIPolicy(cfg, tokenizer, stats, vocab_size=vocab_rows)
    if cfg.model_path and not meta:
        load_openpi_checkpoint(policy, cfg.model_path, cfg.pi05)
        load_heads(policy, cfg.model_path)
    if cfg.train_expert_only:
        freeze_vlm(policy)
    if cfg.is_lora:
        _apply_lora(policy, cfg, device)
    policy.flow.paligemma_with_expert.gradient_checkpointing = bool(cfg.gradient_checkpointing)
    policy.to(device=device, dtype=PRECISION_DTYPES[cfg.precision])
    for head in (policy.value_head, policy.noise_head):
        if head is not None:
            head.float()
    return policy


def count_openpi_parameters(cfg: OpenPIModelConfig) -> dict[str, int]:
    """Parameter counts by part, built on the meta device (``accelerate.init_empty_weights``; no file is read):
    ``vision`` (SigLIP + projector), ``language_model`` (Gemma 2B at full size), ``expert``, ``action_head``
    (action / state / time projections), ``noise_head``, ``value_head``, ``lora``, ``total``, ``trainable``."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        policy = build_openpi_policy(cfg, "meta")
    parts = {
        "vision": ("flow.paligemma_with_expert.paligemma.model.vision_tower.",
                   "flow.paligemma_with_expert.paligemma.model.multi_modal_projector."),
        "language_model": ("flow.paligemma_with_expert.paligemma.model.language_model.",),
        "expert": ("flow.paligemma_with_expert.gemma_expert.",),
        "noise_head": ("noise_head.",),
        "value_head": ("value_head.",),
    }
    counts = dict.fromkeys([*parts, "action_head", "lora", "total", "trainable"], 0)
    for name, param in policy.named_parameters():
        n = param.numel()
        counts["total"] += n
        counts["trainable"] += n if param.requires_grad else 0
        if "lora_" in name:
            counts["lora"] += n
            continue
        part = next((key for key, prefixes in parts.items() if name.startswith(prefixes)), "action_head")
        counts[part] += n
    return counts

"""Build an OpenVLA / OpenVLA-OFT policy: random preset weights, or a local OpenVLA-layout checkpoint
(openvla/openvla-7b, RLinf's OpenVLA / OpenVLA-OFT), optional LoRA (peft), precision and device."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from rlvla_cli.errors import AssetError, ConfigError
from rlvla_cli.models.base import PRECISION_DTYPES
from rlvla_cli.models.checkpoint import load_into, read_json, read_state_dict
from rlvla_cli.models.normalization import NormStats, read_dataset_statistics, select_stats
from rlvla_cli.models.openvla_common import OPENVLA_LORA_TARGETS, PrismaticPolicy, check_image_size
from rlvla_cli.models.presets import openvla_dims
from rlvla_cli.models.prismatic import (
    HEAD_PREFIXES,
    PrismaticVLA,
    checkpoint_key_to_ours,
    dims_from_hf_config,
    with_vocab,
)
from rlvla_cli.models.tokenization import build_fallback_tokenizer, load_tokenizer


def _resolve(cfg):
    """-> (dims, image size, tokenizer, raw dataset statistics or None) from the checkpoint or the preset."""
    if cfg.model_path:
        path = Path(cfg.model_path)
        config = read_json(path / "config.json", "the model config")
        dims, image_size = dims_from_hf_config(config, str(path / "config.json"))
        tokenizer = load_tokenizer(path, cfg.trust_remote_code)
        raw_stats = config.get("norm_stats")
        if (path / "dataset_statistics.json").is_file():
            raw_stats = read_dataset_statistics(path / "dataset_statistics.json")
    else:
        dims = openvla_dims(cfg.size, cfg.vocab_size)
        image_size = cfg.image_size
        check_image_size(image_size, dims.dino.patch_size)
        tokenizer = build_fallback_tokenizer(dims.llm.base_vocab_size)
        raw_stats = None
    if cfg.dataset_statistics_path:
        raw_stats = read_dataset_statistics(cfg.dataset_statistics_path)
    if len(tokenizer) > dims.llm.vocab_size:
        raise AssetError(f"the tokenizer has {len(tokenizer)} tokens but the language model only "
                         f"{dims.llm.vocab_size} embeddings", key="actor.model.model_path",
                         fix="use the tokenizer that came with the checkpoint")
    return with_vocab(dims, tokenizer.vocab_size), image_size, tokenizer, raw_stats


def _stats(cfg, raw_stats: dict | None) -> NormStats:
    if raw_stats:
        return select_stats(raw_stats, cfg.unnorm_key, cfg.action_dim, "the dataset statistics")
    if cfg.unnorm_key is not None:
        raise ConfigError(f"unnorm_key {cfg.unnorm_key!r} is set but the model has no dataset statistics",
                          key="actor.model.unnorm_key",
                          fix="set dataset_statistics_path, use a checkpoint with dataset_statistics.json, or unset it")
    return NormStats.identity(cfg.action_dim)


def build_prismatic_policy(policy_cls: type[PrismaticPolicy], cfg, device: str) -> PrismaticPolicy:
    """See the module docstring; ``device == "meta"`` (parameter counting) reads no weights."""
    from accelerate import init_empty_weights

    dims, image_size, tokenizer, raw_stats = _resolve(cfg)
    load = bool(cfg.model_path) and device != "meta"
    if load:  # the 7B body is allocated only by the checkpoint's own tensors
        context = init_empty_weights(include_buffers=False)
    else:  # random init straight on the target device (a 7B init on the CPU takes minutes)
        context = torch.device(device) if device != "meta" else nullcontext()
    with context:
        vla = PrismaticVLA(dims, image_size, tokenizer.pad_token_id, cfg.attn_implementation)
    policy = policy_cls(cfg, vla, tokenizer, _stats(cfg, raw_stats), raw_stats, image_size)  # heads: real init
    if load:
        own = policy.state_dict()

        def rename(key: str) -> str | None:
            if "rotary_emb.inv_freq" in key:
                return None
            ours = checkpoint_key_to_ours(key, dims)
            # a stored head this config does not use (e.g. a value head with add_value_head false) is skipped
            return None if (ours and ours.startswith(HEAD_PREFIXES) and ours not in own) else ours

        state = read_state_dict(cfg.model_path, rename)
        state.update(_oft_proprio_file(policy, cfg.model_path, state))
        # heads the checkpoint lacks (a fresh critic / proprio projector on a base VLA) keep their init
        load_into(policy, state, source=str(cfg.model_path), allow_missing=lambda k: k.startswith(HEAD_PREFIXES))
    _finish(policy, cfg, device)
    return policy


def _oft_proprio_file(policy, model_path: str, state: dict) -> dict:
    """OpenVLA-OFT ships its proprio projector apart, as ``proprio_projector--<step>_checkpoint.pt`` (a torch
    pickle: read with ``weights_only=True``, ``module.`` prefixes dropped) -> ``proprio_projector.*`` tensors."""
    if getattr(policy, "proprio_projector", None) is None or any(k.startswith("proprio_projector.") for k in state):
        return {}
    files = sorted(Path(model_path).glob("proprio_projector--*_checkpoint.pt"))
    if not files:
        return {}
    try:
        raw = torch.load(str(files[-1]), map_location="cpu", weights_only=True)
    except Exception as err:
        raise AssetError(f"{files[-1]} could not be read as plain tensors ({err})",
                         fix="re-export it with torch.save(state_dict) or safetensors") from err
    return {"proprio_projector." + k.removeprefix("module."): v for k, v in raw.items()}


def _finish(policy: PrismaticPolicy, cfg, device: str) -> None:
    """LoRA, gradient checkpointing, dtype and device (value head stays fp32)."""
    from rlvla_cli.models.lora import inject_lora, load_adapter, load_heads, lora_config_for

    if cfg.is_lora:
        policy.lora_config = lora_config_for(cfg, OPENVLA_LORA_TARGETS, cfg.model_path)
        inject_lora(policy.vla, policy.lora_config)
        if cfg.lora_path and device != "meta":
            load_adapter(policy.vla, cfg.lora_path)
            load_heads(policy, cfg.lora_path)
    if cfg.gradient_checkpointing:
        lm = policy.vla.language_model
        if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.x name
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        policy.vla.vision_backbone.featurizer.gradient_checkpointing = True
        policy.vla.vision_backbone.fused_featurizer.gradient_checkpointing = True
    if device != "meta":
        policy.vla.to(device=device, dtype=PRECISION_DTYPES[cfg.precision])
        policy.to(device=device)
        if policy.value_head is not None:
            policy.value_head.float()
    elif policy.value_head is not None:
        policy.value_head.float()
    for p in policy.value_head_parameters():
        p.requires_grad = True

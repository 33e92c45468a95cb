"""Build an OpenVLA / OpenVLA-OFT policy: random preset weights, or a local OpenVLA-layout checkpoint
(openvla/openvla-7b, RLinf's OpenVLA / OpenVLA-OFT), optional LoRA (peft), precision and device.

Loading follows the reference: dataset statistics are config.json's ``norm_stats`` updated with
``dataset_statistics.json`` (RLinf); RLinf's value head (``value_head.mlp.*``) loads into ours; OFT's
continuous-action head files are refused (rlvla decodes action tokens); a LoRA's base is checked against the
base directory; adapter tensors of modules OpenVLA never runs are dropped with a counted, logged reason.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import torch

from rlvla_cli.errors import AssetError, ConfigError
from rlvla_cli.models.base import PRECISION_DTYPES
from rlvla_cli.models.checkpoint import load_into, read_json, read_state_dict
from rlvla_cli.models.normalization import NormStats, merge_norm_stats, read_dataset_statistics, select_stats
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

logger = logging.getLogger(__name__)


def _resolve(cfg):
    """-> (dims, image size, tokenizer, raw dataset statistics or None) from the checkpoint or the preset."""
    if cfg.model_path:
        path = Path(cfg.model_path)
        config = read_json(path / "config.json", "the model config")
        dims, image_size = dims_from_hf_config(config, str(path / "config.json"))
        refuse_continuous_head(path)
        tokenizer = load_tokenizer(path, cfg.trust_remote_code)
        stats_file = path / "dataset_statistics.json"
        raw_stats = merge_norm_stats(config.get("norm_stats"),
                                     read_dataset_statistics(stats_file) if stats_file.is_file() else None)
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
        _load_checkpoint(policy, cfg, dims)
    _finish(policy, cfg, device)
    return policy


def refuse_continuous_head(path: Path) -> None:
    """OFT's L1-regression / diffusion heads replace the action tokens: loading the VLA alone would decode the
    untrained lm_head rows, so such a directory is refused."""
    from rlvla_cli.models.openvla_files import continuous_head_files

    files = continuous_head_files(path)
    if files:
        raise AssetError(
            f"{path} is an OpenVLA-OFT checkpoint with a continuous action head ({files[0].name}: moojink/"
            "openvla-oft's L1-regression MLP or diffusion head, trained instead of the action tokens); rlvla's "
            "openvla_oft decodes the 256-bin action tokens (RL needs their log-probs), so these weights would act "
            "at random",
            key="actor.model.model_path",
            fix="use a discrete-token OpenVLA-OFT checkpoint (RLinf's OFT models, e.g. `rlvla download-assets "
            "openvla-oft-maniskill-base`) or the reference code for this one",
        )


def _load_checkpoint(policy: PrismaticPolicy, cfg, dims) -> None:
    """The checkpoint's tensors into ``policy`` (built under ``init_empty_weights``); stored heads this config
    does not use are reported, heads the checkpoint lacks keep their fresh initialisation (also reported)."""
    own = policy.state_dict()
    unused_heads: list[str] = []

    def rename(key: str) -> str | None:
        if "rotary_emb.inv_freq" in key:
            return None
        ours = checkpoint_key_to_ours(key, dims)
        if ours and ours.startswith(HEAD_PREFIXES) and ours not in own:
            unused_heads.append(key)  # e.g. a stored value head with add_value_head false
            return None
        return ours

    state = read_state_dict(cfg.model_path, rename)
    state.update(_oft_proprio_file(policy, cfg.model_path, state))
    _complete_value_head(policy, state, unused_heads, str(cfg.model_path))
    # heads the checkpoint lacks (a fresh critic / proprio projector on a base VLA) keep their init
    load_into(policy, state, source=str(cfg.model_path), allow_missing=lambda k: k.startswith(HEAD_PREFIXES))


def _complete_value_head(policy: PrismaticPolicy, state: dict, unused: list[str], source: str) -> None:
    """RLinf's value head has no bias on its last layer (``bias_last=False``): a zero bias is the same function.
    A stored head of another output size (value_type) is refused; one that is not used or not stored is logged."""
    stored = {k for k in state if k.startswith("value_head.")}
    if policy.value_head is None:
        if unused and any("value_head." in k for k in unused):
            logger.warning("%s: the stored value head is not loaded (add_value_head is false)", source)
        return
    last = len(policy.value_head.net) - 1
    weight, bias = f"value_head.net.{last}.weight", f"value_head.net.{last}.bias"
    if not stored:
        lora_path = policy.cfg.lora_path
        if not (lora_path and (Path(lora_path) / "heads.safetensors").is_file()):  # else load_heads restores it
            logger.warning("%s has no value head; it starts from a fresh initialisation (as RLinf's)", source)
        return
    if weight in state and bias not in state:
        state[bias] = state[weight].new_zeros(state[weight].shape[0])
    if weight in state and state[weight].shape[0] != policy.cfg.num_values:
        raise ConfigError(
            f"{source}: the stored value head gives {state[weight].shape[0]} values per observation but "
            f"value_type {policy.cfg.value_type!r} with num_action_chunks {policy.cfg.num_action_chunks} needs "
            f"{policy.cfg.num_values}", key="actor.model.value_type",
            fix="set value_type to the one the checkpoint was trained with (chunk_level: 1 value, action_level: C)")


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
    from rlvla_cli.models.openvla_files import adapter_key_plan

    if cfg.is_lora:
        if cfg.lora_path and cfg.model_path:
            check_adapter_base(cfg.lora_path, cfg.model_path)
        policy.lora_config = lora_config_for(cfg, OPENVLA_LORA_TARGETS, cfg.model_path)
        if getattr(policy.lora_config, "use_dora", False):  # action_logits adds plain LoRA deltas only
            raise AssetError(f"{cfg.lora_path or 'the LoRA config'} uses DoRA, which OpenVLA here does not support",
                             key="actor.model.lora_path", fix="use a plain LoRA adapter (use_dora: false)")
        inject_lora(policy.vla, policy.lora_config)
        if cfg.lora_path and device != "meta":
            plan, stored = load_adapter(policy.vla, cfg.lora_path, lambda keys: adapter_key_plan(keys, policy.vla.dims))
            if plan.dropped:
                logger.info("%s: %d adapter tensors not loaded: %s", cfg.lora_path, len(plan.dropped),
                            plan.drop_summary())
            if plan.absent:
                logger.info("%s has no adapter for %d LoRA tensors (e.g. %s): they stay at peft's init, B = 0, "
                            "an identity, as PeftModel.from_pretrained leaves them", cfg.lora_path,
                            len(plan.absent), plan.absent[0])
            _merge_head_adapters(policy, plan.elsewhere, stored, cfg.lora_path)
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


def check_adapter_base(lora_path: str, model_path: str) -> None:
    """Refuse an adapter whose ``base_model_name_or_path`` names a published base of the other family (an OFT
    LoRA on plain openvla-7b); warn when the names merely differ (a renamed local copy)."""
    from rlvla_cli.models.lora import read_adapter_config
    from rlvla_cli.models.openvla_files import adapter_base_pairing

    base_config_path = Path(model_path) / "config.json"
    base_config = read_json(base_config_path, "the model config") if base_config_path.is_file() else {}
    pairing = adapter_base_pairing(read_adapter_config(lora_path), model_path, base_config)
    if pairing.status == "mismatch":
        raise AssetError(
            f"the LoRA adapter {lora_path} was trained on {pairing.adapter_base!r} (its adapter_config.json "
            f"base_model_name_or_path) but model_path {model_path} is {', '.join(pairing.base_names)}: the adapter "
            "only works on the base it was trained on",
            key="actor.model.model_path",
            fix=f"point model_path at a copy of {pairing.adapter_base} (RLinf's OFT LoRAs apply to their OFT SFT "
            "base, e.g. `rlvla download-assets openvla-oft-maniskill-lora` fetches both)",
        )
    if pairing.status == "unknown":
        logger.warning("LoRA adapter %s names its base %r, model_path is %s: check that they are the same model",
                       lora_path, pairing.adapter_base, ", ".join(pairing.base_names))


def _merge_head_adapters(policy: PrismaticPolicy, names: dict[str, str], stored: dict, source: str) -> None:
    """Adapters peft saved on the policy's own heads (RLinf wraps the whole policy, and its ``fc1`` / ``fc2``
    targets match OFT's proprio projector): merged into the head's weight, W + scaling * B @ A, the function
    the adapted head computes (the head itself is frozen under LoRA, as are its adapters' effect)."""
    if not names:
        return
    modules = dict(policy.named_modules())
    scaling = policy.lora_config.lora_alpha / policy.lora_config.r
    if getattr(policy.lora_config, "use_rslora", False):
        scaling = policy.lora_config.lora_alpha / policy.lora_config.r ** 0.5
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, name in names.items():
        module_name, part = name.split(".lora_")[0], "A" if ".lora_A." in name else "B"
        pairs.setdefault(module_name, {})[part] = stored[key]
    for module_name, ab in pairs.items():
        target = modules.get(module_name)
        if target is None or not isinstance(target, torch.nn.Linear) or set(ab) != {"A", "B"}:
            raise AssetError(f"{source}: adapter tensors for {module_name} fit no head of this model",
                             key="actor.model.lora_path",
                             fix="enable the head the adapter was trained with (use_proprio / add_value_head)")
        with torch.no_grad():
            delta = (ab["B"].float() @ ab["A"].float()) * scaling
            target.weight.copy_((target.weight.float() + delta.to(target.weight.device)).to(target.weight.dtype))
    logger.info("%s: LoRA of %s merged into their weights", source, sorted(pairs))

"""Run the loaders' own checks on shape-only tensors: nothing is read but headers, nothing is allocated.

The configured policy is built on the meta device (``accelerate.init_empty_weights``, as ``count_parameters``
does), every stored tensor becomes a meta tensor of its shape and dtype, and the loader's own renaming
(``prismatic.checkpoint_key_to_ours``, ``openpi.checkpoint.openpi_key_to_ours``) and ``checkpoint.load_into``
run on them: missing, unexpected and mis-shaped keys are exactly those ``rlvla train`` would refuse, with the
same message. Errors raised while building (tokenizer, ``unnorm_key``, dimensions) are the builders' own too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvla_cli.checkpoints.families import OFT_PROPRIO_GLOB
from rlvla_cli.checkpoints.metadata import TensorMeta, torch_file_metadata
from rlvla_cli.errors import UserError


@dataclass
class LoadCheck:
    """``mapped``: stored name -> our parameter name (None: skipped by the loader); ``error``: the loader's
    refusal, if any; ``policy``: the meta-device policy (for the adapter check); ``extra``: tensors read from
    side files (OFT's proprio projector)."""

    mapped: dict[str, str | None] = field(default_factory=dict)
    error: UserError | None = None
    policy: Any = None
    extra: dict[str, TensorMeta] = field(default_factory=dict)


def build_meta_policy(model_cfg: Any):
    """The policy ``model_cfg`` describes, on the meta device (no weights read; config / tokenizer / statistics
    files are, as the builders read them)."""
    from accelerate import init_empty_weights

    from rlvla_cli.models.registry import build_policy

    with init_empty_weights(include_buffers=False):
        return build_policy(model_cfg, device="meta")


def openvla_renamer(policy) -> Callable[[str], str | None]:
    """The OpenVLA / OFT builder's renaming (``openvla_builder.build_prismatic_policy``): rotary buffers
    dropped, ``checkpoint_key_to_ours``, stored heads the configured policy lacks skipped."""
    from rlvla_cli.models.prismatic import HEAD_PREFIXES, checkpoint_key_to_ours

    own = policy.state_dict()
    dims = policy.vla.dims

    def rename(key: str) -> str | None:
        if "rotary_emb.inv_freq" in key:
            return None
        ours = checkpoint_key_to_ours(key, dims)
        return None if (ours and ours.startswith(HEAD_PREFIXES) and ours not in own) else ours

    return rename


def oft_proprio_metadata(policy, directory: Path, mapped: dict[str, str | None]) -> dict[str, TensorMeta]:
    """OFT's ``proprio_projector--*_checkpoint.pt`` as the builder reads it (the newest file, ``module.``
    dropped, under ``proprio_projector.``), when the policy has a projector and the weights hold none."""
    if getattr(policy, "proprio_projector", None) is None:
        return {}
    if any(v and v.startswith("proprio_projector.") for v in mapped.values()):
        return {}
    files = sorted(directory.glob(OFT_PROPRIO_GLOB))
    if not files:
        return {}
    return {"proprio_projector." + m.name.removeprefix("module."): m for m in torch_file_metadata(files[-1])}


def _run_load_into(policy, state: dict, source: str, allow_missing: Callable[[str], bool]) -> UserError | None:
    from rlvla_cli.models.checkpoint import load_into

    try:
        load_into(policy, state, source=source, allow_missing=allow_missing)
    except UserError as err:
        return err
    return None


def _retry_other_unnorm_keys(cfg: Any, err: UserError, candidates: list[str]):
    """After an ``unnorm_key`` refusal (already reported), build with another key so the weights still get
    checked; None when no candidate builds."""
    if getattr(err, "key", None) != "actor.model.unnorm_key":
        return None
    for key in candidates:
        try:
            return build_meta_policy(cfg.model_copy(update={"unnorm_key": key}))
        except UserError:
            continue
    return None


def check_openvla(model_cfg: Any, directory: Path, tensors: dict[str, TensorMeta],
                  unnorm_candidates: list[str] = ()) -> LoadCheck:
    """OpenVLA / OpenVLA-OFT: build (no LoRA: the builder loads the base before injecting adapters), rename,
    load shape-only tensors. ``unnorm_candidates``: dataset keys to build with after an ``unnorm_key`` refusal,
    so the weights are still checked."""
    from rlvla_cli.models.prismatic import HEAD_PREFIXES

    result = LoadCheck()
    base_cfg = model_cfg.model_copy(update={"is_lora": False, "lora_path": None})
    try:
        policy = build_meta_policy(base_cfg)
    except UserError as err:
        result.error = err
        policy = _retry_other_unnorm_keys(base_cfg, err, unnorm_candidates)
        if policy is None:
            return result
    rename = openvla_renamer(policy)
    result.mapped = {k: rename(k) for k in tensors}
    result.extra = oft_proprio_metadata(policy, directory, result.mapped)
    state = {ours: tensors[k].meta_tensor() for k, ours in result.mapped.items() if ours}
    state.update({k: m.meta_tensor() for k, m in result.extra.items()})
    result.error = result.error or _run_load_into(policy, state, str(directory),
                                                  lambda k: k.startswith(HEAD_PREFIXES))
    result.policy = policy
    return result


def _with_base_policy(model_cfg: Any) -> LoadCheck:
    """A ``LoadCheck`` holding the configured policy without its adapter, built on the meta device (or the
    build's error)."""
    result = LoadCheck()
    try:
        result.policy = build_meta_policy(model_cfg.model_copy(update={"is_lora": False, "lora_path": None}))
    except UserError as err:
        result.error = err
    return result


def check_openpi(model_cfg: Any, directory: Path, tensors: dict[str, TensorMeta]) -> LoadCheck:
    """pi0 / pi0.5: ``openpi_key_to_ours``, the tied LM-head fallback and the variant check of
    ``load_openpi_checkpoint``, then ``load_into`` on shape-only tensors."""
    from rlvla_cli.errors import AssetError
    from rlvla_cli.models.openpi.checkpoint import (
        _VLM_LM_HEAD,
        EMBED_KEY,
        NET_PREFIX,
        detect_variant,
        openpi_key_to_ours,
        strip_wrapper_prefix,
    )

    result = _with_base_policy(model_cfg)
    if result.error is not None:
        return result
    policy = result.policy
    result.mapped = {k: openpi_key_to_ours(k) for k in tensors}
    state = {ours: tensors[k].meta_tensor() for k, ours in result.mapped.items() if ours}
    raw = {strip_wrapper_prefix(k): k for k in tensors}
    if EMBED_KEY not in state and _VLM_LM_HEAD in raw:  # the tied pair stored under the head's name
        state[EMBED_KEY] = tensors[raw[_VLM_LM_HEAD]].meta_tensor()
        result.mapped[raw[_VLM_LM_HEAD]] = EMBED_KEY
    try:
        is_pi05 = detect_variant(list(raw), str(directory))
    except AssetError as err:
        result.error = err
        return result
    if is_pi05 != model_cfg.pi05:
        kind = "pi0.5" if is_pi05 else "pi0"
        result.error = AssetError(f"{directory} is a {kind} checkpoint but the config says pi05: {model_cfg.pi05}",
                                  key="actor.model.pi05", fix=f"set actor.model.pi05: {str(is_pi05).lower()}")
        return result
    result.error = _run_load_into(policy, state, str(directory), lambda k: not k.startswith(NET_PREFIX))
    return result


def check_strict(model_cfg: Any, directory: Path, tensors: dict[str, TensorMeta]) -> LoadCheck:
    """rlvla's own architectures (``load_policy_safetensors``): every key, every shape, names as stored."""
    result = _with_base_policy(model_cfg)
    if result.error is not None:
        return result
    policy = result.policy
    result.mapped = {k: k for k in tensors}
    state = {k: m.meta_tensor() for k, m in tensors.items()}
    result.error = _run_load_into(policy, state, str(directory), lambda k: False)
    return result


def check_load(model_cfg: Any, directory: Path, tensors: dict[str, TensorMeta],
               unnorm_candidates: list[str] = ()) -> LoadCheck:
    """Dispatch on ``model_cfg.model_type``."""
    if model_cfg.model_type in ("openvla", "openvla_oft"):
        return check_openvla(model_cfg, directory, tensors, list(unnorm_candidates))
    if model_cfg.model_type == "openpi":
        return check_openpi(model_cfg, directory, tensors)
    return check_strict(model_cfg, directory, tensors)

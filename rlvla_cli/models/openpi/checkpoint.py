"""Loading the PyTorch pi0 / pi0.5 checkpoints openpi and RLinf publish (RLinf/RLinf-Pi0-*, RLinf/RLinf-Pi05-*).

Their ``model.safetensors`` holds openpi's ``PI0Pytorch`` state dict (transformers 4.5x names):
``paligemma_with_expert.paligemma.model.vision_tower.vision_model.*`` (SigLIP), ``...paligemma.model.
multi_modal_projector.linear.*``, ``...paligemma.model.language_model.*`` (Gemma 2B), ``...paligemma.lm_head.
weight`` (tied to the token embedding; one of the two may be deduplicated away), ``paligemma_with_expert.
gemma_expert.model.*`` (the expert; pi0.5 norms carry ``.dense``), ``paligemma_with_expert.gemma_expert.lm_head``
(unused), ``action_in_proj``, ``action_out_proj`` and ``state_proj`` + ``action_time_mlp_in/out`` (pi0) or
``time_mlp_in/out`` (pi0.5). Our policy keeps the network under ``flow.`` with the same names, except that
transformers 5 dropped SigLIP's ``vision_model.`` level.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from rlvla_cli.errors import AssetError
from rlvla_cli.models.checkpoint import load_into, read_state_dict, save_state_dict, weight_files

logger = logging.getLogger(__name__)

NET_PREFIX = "flow."
_EXPERT_LM_HEAD = "paligemma_with_expert.gemma_expert.lm_head."
_VLM_LM_HEAD = "paligemma_with_expert.paligemma.lm_head.weight"
_RL_HEADS = ("value_head.", "noise_head.")
EMBED_KEY = NET_PREFIX + "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
PI05_MARKER = "time_mlp_in.weight"
PI0_MARKER = "state_proj.weight"


_WRAPPERS = ("module.", "_orig_mod.", "model.")  # DDP / torch.compile / wrapper prefixes some trainers add
_TOP_LEVEL = ("paligemma_with_expert.", "action_", "state_proj.", "time_mlp_", "value_head.", "noise_head.")


def strip_wrapper_prefix(key: str) -> str:
    """Drop a DDP / compile / wrapper prefix in front of openpi's top-level names (``module.action_in_proj...``)."""
    for prefix in _WRAPPERS:
        if key.startswith(prefix) and key[len(prefix) :].startswith(_TOP_LEVEL):
            return key[len(prefix) :]
    return key


def openpi_key_to_ours(key: str) -> str | None:
    """openpi checkpoint name -> our parameter name; None for tensors we do not keep."""
    key = strip_wrapper_prefix(key)
    if key.startswith(_EXPERT_LM_HEAD) or key.startswith(_RL_HEADS) or key == _VLM_LM_HEAD:
        return None
    return NET_PREFIX + key.replace(".vision_tower.vision_model.", ".vision_tower.")


def our_key_to_openpi(key: str) -> str | None:
    """Inverse of ``openpi_key_to_ours`` for the network tensors (None for our heads)."""
    if not key.startswith(NET_PREFIX):
        return None
    return key[len(NET_PREFIX) :].replace(".vision_tower.", ".vision_tower.vision_model.", 1)


def detect_variant(keys: list[str], source: str) -> bool:
    """True for a pi0.5 checkpoint (time MLP), False for pi0 (state projection); AssetError for neither."""
    if PI05_MARKER in keys:
        return True
    if PI0_MARKER in keys:
        return False
    raise AssetError(
        f"{source} is not an openpi pi0 / pi0.5 checkpoint (no `state_proj` or `time_mlp_in` tensors)",
        key="actor.model.model_path",
        fix="point model_path at a PyTorch openpi checkpoint (e.g. RLinf/RLinf-Pi0-LIBERO-...)",
    )


def stored_vocab_rows(directory: str | Path) -> int | None:
    """Rows of the VLM token embedding stored in a safetensors checkpoint (None when it is not there), read from
    the file header only: a checkpoint's own table size wins over the preset's (pi0 ``mini`` had 320 rows before
    its built-in tokenizer learned word merges)."""
    for path in weight_files(directory):
        if path.suffix != ".safetensors":
            continue
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():
                if openpi_key_to_ours(key) == EMBED_KEY:
                    return int(f.get_slice(key).get_shape()[0])
    return None


def load_openpi_checkpoint(policy: nn.Module, directory: str | Path, pi05: bool) -> None:
    """Load ``directory`` (model.safetensors or shards) into ``policy`` (an ``OpenPIPolicy``).

    Verifies the variant and every shape; missing / unexpected tensors raise ``AssetError`` naming them. The
    VLM's LM head is tied to the token embedding and not kept (it never runs); either name fills the embedding.
    RLinf's own RL heads are not loaded (ours differ); the value / noise heads start fresh.
    """
    source = str(directory)
    raw_keys: list[str] = []

    def rename(key: str) -> str | None:
        raw_keys.append(strip_wrapper_prefix(key))
        return openpi_key_to_ours(key)

    state = read_state_dict(directory, rename=rename)
    if EMBED_KEY not in state and _VLM_LM_HEAD in raw_keys:  # the tied pair was stored under the head's name
        head = read_state_dict(directory, rename=lambda k: k if strip_wrapper_prefix(k) == _VLM_LM_HEAD else None)
        state[EMBED_KEY] = next(iter(head.values()))
    is_pi05 = detect_variant(raw_keys, source)
    if is_pi05 != pi05:
        kind = "pi0.5" if is_pi05 else "pi0"
        raise AssetError(
            f"{source} is a {kind} checkpoint but the config says pi05: {pi05}",
            key="actor.model.pi05",
            fix=f"set actor.model.pi05: {str(is_pi05).lower()}",
        )
    dropped = sorted({k.split(".")[0] for k in raw_keys if k.startswith(_RL_HEADS)})
    if dropped:
        logger.warning("%s: RL heads %s are not loaded; they start from a fresh initialisation", source, dropped)
    load_into(policy, state, source=source, allow_missing=lambda k: not k.startswith(NET_PREFIX))


def save_openpi_checkpoint(policy: nn.Module, directory: str | Path) -> list[str]:
    """Write the network in openpi's layout (model.safetensors; the tied LM head is stored as the embedding)."""
    state: dict[str, torch.Tensor] = {}
    for key, tensor in policy.state_dict().items():
        name = our_key_to_openpi(key)
        if name is not None:
            state[name] = tensor
    return save_state_dict(state, directory)

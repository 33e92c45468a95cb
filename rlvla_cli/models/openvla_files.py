"""What the files of an OpenVLA / OpenVLA-OFT directory map to: pure functions returning data, shared by the
loader (``openvla_builder``) and ``rlvla inspect-checkpoint``.

- ``adapter_key_plan``: which peft adapter tensors load into the modules rlvla builds and which are dropped, with
  the reason. Adapters saved by peft around the real module tree (RLinf's default targets include ``q`` / ``kv``
  / ``proj`` / ``fc1`` / ``fc2``; OFT's ``all-linear``) sit on the last block of each vision tower and on SigLIP's
  ``attn_pool``: OpenVLA reads each tower after block ``depth - 2`` (timm ``get_intermediate_layers``), so those
  modules never reach the output and rlvla does not build them; their adapters are exact no-ops.
- ``adapter_base_pairing``: the adapter's ``base_model_name_or_path`` against the base directory.
- ``continuous_head_files``: OFT's L1-regression / diffusion head files, which rlvla refuses.
- ``value_head_key`` (from ``prismatic``): RLinf's value head names (``value_head.mlp.{0,2,4}``) -> ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rlvla_cli.models.lora import AdapterPlan, peft_param_name
from rlvla_cli.models.presets import OpenVLADims
from rlvla_cli.models.prismatic import HEAD_PREFIXES, value_head_key
from rlvla_cli.models.vision import unused_tower_key

_TOWERS = ("vision_backbone.featurizer.", "vision_backbone.fused_featurizer.")
# OFT heads that replace the action tokens (moojink/openvla-oft vla-scripts/finetune.py saves them next to the VLA)
CONTINUOUS_HEAD_PATTERNS = ("action_head--*checkpoint.pt", "noisy_action_projector--*checkpoint.pt")


def _tower_unused(name: str, dims: OpenVLADims) -> bool:
    for tower, tdims in zip(_TOWERS, (dims.dino, dims.siglip), strict=True):
        if name.startswith(tower) and unused_tower_key(name[len(tower):], tdims.depth):
            return True
    return False


def adapter_key_plan(keys: list[str], dims: OpenVLADims) -> AdapterPlan:
    """Stored peft adapter names (``base_model.model.<module>.lora_A.weight``, saved around the whole policy) ->
    an ``AdapterPlan`` for the ``vla`` module. Adapters of modules OpenVLA never runs (last tower block, final
    norms, SigLIP's ``attn_pool``) are dropped; those of the policy's heads (``proprio_projector.*``,
    ``value_head.*``: RLinf's targets ``fc1`` / ``fc2`` also match OFT's proprio projector) go to ``elsewhere``;
    every other name maps to ``<module>.lora_A.default.weight`` (whether it exists is the loader's check)."""
    plan = AdapterPlan()
    for key in keys:
        name = peft_param_name(key)
        if _tower_unused(name, dims):
            plan.dropped[key] = "adapter on a vision-tower module OpenVLA never runs (last block / norm / attn_pool)"
        elif name.startswith(HEAD_PREFIXES):
            plan.elsewhere[key] = name
        else:
            plan.load[key] = name
    return plan


def continuous_head_files(model_dir: str | Path) -> list[Path]:
    """OFT continuous-action head files in ``model_dir`` (``action_head--<step>_checkpoint.pt``: the
    L1-regression MLPResNet; ``noisy_action_projector--*``: the diffusion variant)."""
    d = Path(model_dir)
    return sorted(p for pattern in CONTINUOUS_HEAD_PATTERNS for p in d.glob(pattern))


# Published base models by family (directory / repo name, lower case). An adapter trained on one family and a
# base of the other is certainly wrong (an OFT LoRA on plain openvla-7b decodes noise); two different names of
# one family are only reported (RLinf publishes one base under several names).
PLAIN_OPENVLA_BASES = ("openvla-7b", "openvla-7b-prismatic", "openvla-7b-rlvla-warmup", "openvla-7b-rlvla-rl")
PLAIN_OPENVLA_PREFIXES = ("openvla-7b-finetuned-", "rlinf-openvla-ppo-", "rlinf-openvla-grpo-")
OFT_BASE_PREFIXES = ("openvla-oft-", "openvla-7b-oft-", "rlinf-openvlaoft-")


def _base_name(text: str | None) -> str | None:
    if not text:
        return None
    name = str(text).rstrip("/\\").replace("\\", "/").split("/")[-1].strip().lower()
    return name or None


def base_family(name: str | None) -> Literal["openvla", "openvla_oft"] | None:
    """``openvla`` / ``openvla_oft`` for a published base name, None for any other name."""
    if not name:
        return None
    if name.startswith(OFT_BASE_PREFIXES):
        return "openvla_oft"
    if name in PLAIN_OPENVLA_BASES or name.startswith(PLAIN_OPENVLA_PREFIXES):
        return "openvla"
    return None


@dataclass(frozen=True)
class BasePairing:
    """``status``: ``match`` (same name), ``mismatch`` (published bases of different families: certainly wrong),
    ``unknown`` (names differ otherwise, e.g. a renamed local copy: warn) or ``unnamed`` (the adapter does not
    say its base)."""

    status: Literal["match", "mismatch", "unknown", "unnamed"]
    adapter_base: str | None
    base_names: tuple[str, ...]


def adapter_base_pairing(adapter_config: dict, base_dir: str | Path, base_config: dict | None = None) -> BasePairing:
    """Compare ``adapter_config.json``'s ``base_model_name_or_path`` (last path / repo component) with the base
    directory's name and its config.json ``_name_or_path``."""
    wanted = _base_name(adapter_config.get("base_model_name_or_path"))
    names = tuple(dict.fromkeys(n for n in (_base_name(str(Path(base_dir).resolve())),
                                            _base_name((base_config or {}).get("_name_or_path"))) if n))
    if wanted is None:
        return BasePairing("unnamed", None, names)
    if wanted in names:
        return BasePairing("match", wanted, names)
    families = {base_family(n) for n in names} - {None}
    if base_family(wanted) is not None and families and base_family(wanted) not in families:
        return BasePairing("mismatch", wanted, names)
    return BasePairing("unknown", wanted, names)


__all__ = ["AdapterPlan", "BasePairing", "adapter_base_pairing", "adapter_key_plan", "base_family",
           "continuous_head_files", "value_head_key"]

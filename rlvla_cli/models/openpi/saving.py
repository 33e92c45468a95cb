"""Writing a pi0 / pi0.5 policy to disk (what ``OpenPIPolicy.save_pretrained`` does), and the LoRA-carrying module.

Kept apart from ``build.py`` (which imports ``policy.py``) so that ``policy.py`` can call it without an import
cycle: this module needs nothing from ``policy.py`` at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from rlvla_cli.models.checkpoint import write_json
from rlvla_cli.models.openpi.checkpoint import save_openpi_checkpoint

if TYPE_CHECKING:
    from rlvla_cli.models.openpi.policy import OpenPIPolicy


def lora_module(policy: OpenPIPolicy) -> torch.nn.Module:
    """The module that carries the LoRA adapters: PaliGemma's Gemma language model."""
    return policy.flow.paligemma_with_expert.paligemma.model.language_model


def save_openpi_policy(policy: OpenPIPolicy, directory: str | Path) -> None:
    """What ``OpenPIPolicy.save_pretrained`` writes (read back by ``build_openpi_policy`` via model_path /
    lora_path): full weights in openpi's layout, or the VLM adapter; heads; config; norm stats; tokenizer."""
    from tokenizers import Tokenizer

    from rlvla_cli.models.lora import save_adapter, save_heads

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if policy.lora_config is not None:
        save_adapter(lora_module(policy), policy.lora_config, out)
        save_heads(policy, out)
    else:
        save_openpi_checkpoint(policy, out)
        heads = {
            name: param.detach().cpu().contiguous()
            for name, param in policy.named_parameters()
            if name.startswith(("value_head.", "noise_head."))
        }
        if heads:
            save_file(heads, str(out / "heads.safetensors"), metadata={"format": "pt"})
    write_json(out / "config.json", {"rlvla_model": policy.cfg.model_dump(mode="json")})
    stats = policy.norm_stats
    if stats.state is not None and stats.actions is not None:
        features = {"state": stats.state, "actions": stats.actions}
        as_json = {
            name: {k: getattr(f, k).tolist() for k in ("mean", "std", "q01", "q99") if getattr(f, k) is not None}
            for name, f in features.items()
        }
        write_json(out / "norm_stats.json", {"norm_stats": as_json})
    if isinstance(policy.tokenizer.backend, Tokenizer):
        policy.tokenizer.backend.save(str(out / "tokenizer.json"))

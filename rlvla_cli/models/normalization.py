"""Action (un-)normalisation with a dataset's q01 / q99 statistics (OpenVLA's ``BOUNDS_Q99`` scheme).

``dataset_statistics.json`` (or ``norm_stats`` in an OpenVLA config.json) maps a dataset key such as
``bridge_orig`` to ``{"action": {"q01": [A], "q99": [A], "mask": [A], ...}, "proprio": {...}}``.
Un-normalising: ``a = (x + 1) / 2 * (q99 - q01) + q01`` where ``mask`` is true; dims with mask false (the
gripper) pass through unchanged.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from rlvla_cli.errors import AssetError, ConfigError


@dataclass
class NormStats:
    """q01 / q99 / mask of one dataset's actions (float32 / bool ``[A]``), and of its proprio if present."""

    q01: torch.Tensor
    q99: torch.Tensor
    mask: torch.Tensor
    proprio_q01: torch.Tensor | None = None
    proprio_q99: torch.Tensor | None = None
    proprio_mask: torch.Tensor | None = None

    @classmethod
    def identity(cls, action_dim: int) -> NormStats:
        """Statistics that leave actions unchanged (q01 -1, q99 1): used when a model has no dataset stats."""
        return cls(-torch.ones(action_dim), torch.ones(action_dim), torch.ones(action_dim, dtype=torch.bool))


def unnormalize_actions(normalized: torch.Tensor, stats: NormStats) -> torch.Tensor:
    """``[..., A]`` in [-1, 1] -> env units (see module docstring)."""
    q01, q99 = stats.q01.to(normalized.device), stats.q99.to(normalized.device)
    mask = stats.mask.to(normalized.device)
    scaled = 0.5 * (normalized + 1.0) * (q99 - q01 + 1e-8) + q01  # + 1e-8 as moojink's / RLinf's OFT
    return torch.where(mask, scaled, normalized)


def normalize_actions(actions: torch.Tensor, stats: NormStats) -> torch.Tensor:
    """Inverse of ``unnormalize_actions`` for demonstrations / SFT, as OpenVLA's data pipeline (openvla
    prismatic/vla/datasets/rlds/utils/data_utils.py, BOUNDS_Q99): where(mask, clip(2 (a - q01) / (q99 - q01 +
    1e-8) - 1, -1, 1), a)."""
    q01, q99 = stats.q01.to(actions.device), stats.q99.to(actions.device)
    mask = stats.mask.to(actions.device)
    scaled = (2.0 * (actions - q01) / (q99 - q01 + 1e-8) - 1.0).clamp(-1.0, 1.0)
    return torch.where(mask, scaled, actions)


def normalize_proprio(states: torch.Tensor, stats: NormStats) -> torch.Tensor:
    """``[..., S]`` -> [-1, 1] with the proprio q01 / q99 (OpenVLA-OFT); unchanged when there are none. As
    moojink's / RLinf's ``normalize_proprio`` (BOUNDS_Q99): clip(where(mask, 2 (x - q01) / (q99 - q01 + 1e-8) - 1,
    x), -1, 1)."""
    if stats.proprio_q01 is None or stats.proprio_q99 is None:
        return states
    q01, q99 = stats.proprio_q01.to(states.device), stats.proprio_q99.to(states.device)
    scaled = 2.0 * (states - q01) / (q99 - q01 + 1e-8) - 1.0
    if stats.proprio_mask is not None:
        scaled = torch.where(stats.proprio_mask.to(states.device), scaled, states)
    return scaled.clamp(-1.0, 1.0)


def read_dataset_statistics(path: str | Path) -> dict:
    """The raw statistics dict of a ``dataset_statistics.json``."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path} does not exist", key="actor.model.dataset_statistics_path",
                         fix="point it at the checkpoint's dataset_statistics.json")
    return json.loads(path.read_text())


def merge_norm_stats(config_stats: dict | None, file_stats: dict | None) -> dict | None:
    """config.json's ``norm_stats`` updated with ``dataset_statistics.json`` (its entries win), as RLinf does
    (``norm_stats.update(new_norm_stats)`` in rlinf/models/embodiment/openvla_oft/rlinf/__init__.py and
    openvla/__init__.py); None when neither has any."""
    if not config_stats and not file_stats:
        return None
    return {**(config_stats or {}), **(file_stats or {})}


def model_norm_stats(model_dir: str | Path) -> dict | None:
    """The dataset statistics an OpenVLA-layout directory carries: config.json's ``norm_stats`` merged with its
    ``dataset_statistics.json`` (``merge_norm_stats``); None when it has none."""
    model_dir = Path(model_dir)
    config_path, file_path = model_dir / "config.json", model_dir / "dataset_statistics.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    file_stats = read_dataset_statistics(file_path) if file_path.is_file() else None
    return merge_norm_stats(config.get("norm_stats"), file_stats)


def resolve_unnorm_key(all_stats: dict, unnorm_key: str | None, source: str) -> str:
    """The statistics key to use: ``unnorm_key``, else ``unnorm_key + "_no_noops"`` when only that exists (RLinf's
    OpenVLA-OFT fallback, e.g. ``libero_10`` -> ``libero_10_no_noops``); None is fine with exactly one dataset.
    Raises ``ConfigError`` listing the keys (with close matches) otherwise."""
    keys = sorted(all_stats)
    if unnorm_key is None:
        if len(keys) != 1:
            raise ConfigError(f"{source} has statistics for {len(keys)} datasets, so `unnorm_key` must pick one",
                              key="actor.model.unnorm_key", fix=f"set it to one of {keys[:20]}")
        return keys[0]
    if unnorm_key not in all_stats and f"{unnorm_key}_no_noops" in all_stats:
        return f"{unnorm_key}_no_noops"
    if unnorm_key not in all_stats:
        close = difflib.get_close_matches(unnorm_key, keys, n=3)
        hint = f" (did you mean {close}?)" if close else ""
        raise ConfigError(f"unnorm_key {unnorm_key!r} is not in {source}{hint}", key="actor.model.unnorm_key",
                          fix=f"use one of {keys[:20]}")
    return unnorm_key


def select_stats(all_stats: dict, unnorm_key: str | None, action_dim: int, source: str) -> NormStats:
    """The ``unnorm_key`` entry of ``all_stats`` (see ``resolve_unnorm_key``) as ``NormStats``."""
    unnorm_key = resolve_unnorm_key(all_stats, unnorm_key, source)
    entry = all_stats[unnorm_key]
    action = entry["action"]
    q01 = torch.tensor(action["q01"], dtype=torch.float32)
    q99 = torch.tensor(action["q99"], dtype=torch.float32)
    mask = torch.tensor(action.get("mask", [True] * len(q01)), dtype=torch.bool)
    if q01.numel() != action_dim:
        raise ConfigError(f"{source}[{unnorm_key!r}] has {q01.numel()}-D actions but action_dim is {action_dim}",
                          key="actor.model.action_dim", fix=f"set action_dim: {q01.numel()}")
    proprio = entry.get("proprio") or {}
    pq01 = torch.tensor(proprio["q01"], dtype=torch.float32) if "q01" in proprio else None
    pq99 = torch.tensor(proprio["q99"], dtype=torch.float32) if "q99" in proprio else None
    pmask = torch.tensor(proprio["mask"], dtype=torch.bool) if "mask" in proprio else None
    return NormStats(q01, q99, mask, pq01, pq99, pmask)

"""openpi normalisation statistics: normalise states, un-normalise actions.

File layout (openpi / RLinf checkpoints): ``<model_path>/assets/<asset_id>/norm_stats.json`` (or
``norm_stats.json`` at the top) = ``{"norm_stats": {"state": {"mean", "std", "q01", "q99"}, "actions": {...}}}``.
pi0 uses mean/std: x_n = (x - mean) / (std + 1e-6); pi0.5 uses quantiles:
x_n = 2 (x - q01) / (q99 - q01 + 1e-6) - 1 (openpi's ``transforms.Normalize``), and the inverse for actions.
Statistics are applied to the first env dims (A actions, S states); the padding dims stay 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from rlvla_cli.errors import AssetError

_EPS = 1e-6


@dataclass
class FeatureStats:
    """mean / std / q01 / q99 float32 ``[N]`` of one feature (state or actions); quantiles may be None."""

    mean: torch.Tensor
    std: torch.Tensor
    q01: torch.Tensor | None = None
    q99: torch.Tensor | None = None

    @classmethod
    def from_json(cls, data: dict, source: str) -> FeatureStats:
        try:
            get = lambda k: torch.tensor(data[k], dtype=torch.float32) if data.get(k) is not None else None  # noqa: E731
            stats = cls(get("mean"), get("std"), get("q01"), get("q99"))
        except (KeyError, TypeError, ValueError) as err:
            raise AssetError(f"{source}: malformed statistics ({err})", fix="re-download the checkpoint") from err
        if stats.mean is None or stats.std is None:
            raise AssetError(f"{source}: statistics need `mean` and `std`", fix="re-download the checkpoint")
        return stats


@dataclass
class OpenPINormStats:
    """Statistics of states and actions; ``None`` means identity (random-weight presets)."""

    state: FeatureStats | None = None
    actions: FeatureStats | None = None


def _sliced(stats: FeatureStats, dims: int, quantile: bool, what: str):
    if quantile and (stats.q01 is None or stats.q99 is None):
        raise AssetError(f"quantile normalisation needs q01/q99 for {what}", key="actor.model.use_quantile_norm",
                         fix="set use_quantile_norm: false or use stats that contain q01 / q99")
    if stats.mean.shape[-1] < dims:
        raise AssetError(f"{what} statistics cover {stats.mean.shape[-1]} dims but the env has {dims}",
                         key="actor.model.norm_stats_path", fix="use the norm stats of this robot / dataset")
    if quantile:
        return stats.q01[:dims], stats.q99[:dims]
    return stats.mean[:dims], stats.std[:dims]


def normalize(x: torch.Tensor, stats: FeatureStats | None, quantile: bool, what: str = "state") -> torch.Tensor:
    """``[..., N]`` raw -> normalised (identity when ``stats`` is None)."""
    if stats is None:
        return x
    a, b = (t.to(x.device) for t in _sliced(stats, x.shape[-1], quantile, what))
    if quantile:
        return 2.0 * (x - a) / (b - a + _EPS) - 1.0
    return (x - a) / (b + _EPS)


def unnormalize(x: torch.Tensor, stats: FeatureStats | None, quantile: bool, what: str = "actions") -> torch.Tensor:
    """``[..., N]`` normalised -> raw units (inverse of ``normalize``)."""
    if stats is None:
        return x
    a, b = (t.to(x.device) for t in _sliced(stats, x.shape[-1], quantile, what))
    if quantile:
        return (x + 1.0) / 2.0 * (b - a + _EPS) + a
    return x * (b + _EPS) + a


def find_norm_stats(model_path: str | None, explicit: str | None, key: str | None) -> Path | None:
    """The norm_stats.json to use: ``explicit``, else the one under ``model_path`` (``key`` picks among several)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise AssetError(f"{path} does not exist", key="actor.model.norm_stats_path",
                             fix="point it at an openpi norm_stats.json")
        return path
    if model_path is None:
        return None
    root = Path(model_path)
    found = sorted(p for p in root.rglob("norm_stats.json") if len(p.relative_to(root).parts) <= 4)
    if key is not None:
        found = [p for p in found if key in p.relative_to(root).parts[:-1] or key == str(p.parent.relative_to(root))]
    if not found:
        if key is not None:
            raise AssetError(f"no norm_stats.json for `{key}` under {root}", key="actor.model.norm_stats_key",
                             fix="check the asset id (e.g. physical-intelligence/libero) or set norm_stats_path")
        return None
    if len(found) > 1:
        options = [str(p.parent.relative_to(root)) for p in found]
        raise AssetError(f"{root} holds several norm_stats.json: {options[:10]}", key="actor.model.norm_stats_key",
                         fix="set norm_stats_key to one of them")
    return found[0]


def load_norm_stats(path: Path | None) -> OpenPINormStats:
    """Read an openpi norm_stats.json (identity stats for None)."""
    if path is None:
        return OpenPINormStats()
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise AssetError(f"{path} is not valid JSON ({err})", fix="re-download the checkpoint") from err
    data = data.get("norm_stats", data)
    missing = [k for k in ("state", "actions") if k not in data]
    if missing:
        raise AssetError(f"{path} lacks statistics for {missing}", key="actor.model.norm_stats_path",
                         fix="use an openpi norm_stats.json with `state` and `actions` entries")
    return OpenPINormStats(
        FeatureStats.from_json(data["state"], f"{path} state"),
        FeatureStats.from_json(data["actions"], f"{path} actions"),
    )

"""openpi normalisation statistics: normalise states, un-normalise actions.

File layouts: ``<model_path>/assets/<asset_id>/norm_stats.json`` (openpi's converter), ``<model_path>/<asset_id>/
norm_stats.json`` (RLinf), or ``norm_stats.json`` at the top (rlvla's saves); content:
``{"norm_stats": {"state": {"mean", "std", "q01", "q99"}, "actions": {...}}}``.
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


_MAX_DEPTH = 4  # assets/<org>/<name>/norm_stats.json is the deepest published layout


def norm_stats_ids(root: str | Path) -> list[str]:
    """Directories (relative to ``root``, posix, ``"."`` for the top) that hold a norm_stats.json, sorted.

    Layouts found in the wild: openpi's JAX-to-PyTorch converter copies the training checkpoint's ``assets/``
    folder, so stats sit at ``assets/<asset_id>/norm_stats.json`` (openpi ``examples/convert_jax_model_to_pytorch.py``;
    openpi's ``policy_config.create_trained_policy`` reads ``checkpoint_dir / "assets" / asset_id``); RLinf reads
    ``<model_path>/<asset_id>/norm_stats.json`` (RLinf ``rlinf/models/embodiment/openpi/__init__.py``:
    ``load_norm_stats(checkpoint_dir, asset_id)``); rlvla's own saves put one at the top.
    """
    base = Path(root)
    found = (p for p in base.rglob("norm_stats.json") if len(p.relative_to(base).parts) <= _MAX_DEPTH)
    return sorted(p.parent.relative_to(base).as_posix() for p in found)


def match_norm_stats_key(ids: list[str], key: str) -> list[str]:
    """The entries of ``ids`` (from ``norm_stats_ids``) that ``key`` names.

    ``key`` is an openpi asset id (``physical-intelligence/libero``) or any trailing part of the directory
    (``libero``), or the whole relative directory (``assets/physical-intelligence/libero``). It matches a
    directory whose last path components equal the key's components, so the same key finds the stats in
    openpi's ``assets/<asset_id>/`` layout and in RLinf's ``<asset_id>/`` layout.
    """
    want = tuple(part for part in key.strip("/").split("/") if part)
    if not want:
        return []
    return [entry for entry in ids if tuple(entry.split("/"))[-len(want) :] == want]


def find_norm_stats(model_path: str | None, explicit: str | None, key: str | None) -> Path | None:
    """The norm_stats.json to use: ``explicit``, else the one under ``model_path`` (``key`` picks among several)."""
    if explicit:
        path = Path(explicit)
        if path.is_dir() and (path / "norm_stats.json").is_file():
            return path / "norm_stats.json"
        if not path.is_file():
            raise AssetError(f"{path} does not exist", key="actor.model.norm_stats_path",
                             fix="point it at an openpi norm_stats.json (or the directory holding one)")
        return path
    if model_path is None:
        return None
    root = Path(model_path)
    ids = norm_stats_ids(root)
    chosen = ids if key is None else match_norm_stats_key(ids, key)
    if not chosen:
        if key is not None:
            where = f"the ones there: {ids[:10]}" if ids else "there is none"
            raise AssetError(f"no norm_stats.json for `{key}` under {root} ({where})", key="actor.model.norm_stats_key",
                             fix="use an asset id such as physical-intelligence/libero (openpi's assets/<id>/ and "
                             "RLinf's <id>/ layouts both match) or set norm_stats_path")
        return None
    if len(chosen) > 1:
        raise AssetError(f"{root} holds several norm_stats.json: {chosen[:10]}", key="actor.model.norm_stats_key",
                         fix="set norm_stats_key to one of them (an asset id such as physical-intelligence/libero)")
    return root / chosen[0] / "norm_stats.json"


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

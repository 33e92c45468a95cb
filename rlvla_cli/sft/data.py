"""Demonstration steps as training samples: the observation at step t and the action chunk that follows it.

Reads the parquet dataset `rlvla collect-demos` writes with Hugging Face ``datasets`` and keeps it in memory
as tensors (a few thousand 128x128 frames are a few hundred MB).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from rlvla_cli.errors import ConfigError


@dataclass
class DemoBatch:
    """N samples. main_images uint8 ``[N, H, W, 3]``; wrist_images uint8 ``[N, H, W, 3]`` or None; states float32
    ``[N, S]``; actions float32 ``[N, C, A]`` (the C actions from step t on, padded with the episode's last
    action); mask bool ``[N, C]`` (False on padding); task_descriptions: N strings."""

    main_images: torch.Tensor
    wrist_images: torch.Tensor | None
    states: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    task_descriptions: list[str]

    def __len__(self) -> int:
        return self.actions.shape[0]

    def select(self, index: torch.Tensor) -> DemoBatch:
        picked = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                picked[f.name] = None
            elif isinstance(value, list):
                picked[f.name] = [value[i] for i in index.tolist()]
            else:
                picked[f.name] = value[index]
        return DemoBatch(**picked)

    def to(self, device: torch.device | str) -> DemoBatch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device)
        return DemoBatch(**moved)

    def observations(self) -> dict:
        """The env-adapter observation dict of these samples."""
        obs = {"main_images": self.main_images, "states": self.states, "task_descriptions": self.task_descriptions}
        if self.wrist_images is not None:
            obs["wrist_images"] = self.wrist_images
        return obs


def action_chunks(actions: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """One episode's actions ``[T, A]`` -> chunks ``[T, C, A]`` starting at every step (padded with the last
    action) and their validity mask ``[T, C]``."""
    steps = len(actions)
    index = np.arange(steps)[:, None] + np.arange(chunk)[None, :]  # [T, C]
    mask = index < steps
    return actions[np.minimum(index, steps - 1)], mask


def read_meta(dataset_dir: Path) -> dict:
    meta_path = dataset_dir / "meta.json"
    if not meta_path.exists():
        raise ConfigError(
            f"{dataset_dir} is not a demonstration dataset (no meta.json)", key="sft.dataset_path",
            fix="point it at a directory written by `rlvla collect-demos --out DIR`",
        )
    return json.loads(meta_path.read_text())


def load_demos(dataset_dir: str | Path, num_action_chunks: int, max_demos: int | None = None) -> DemoBatch:
    """Every step of the first ``max_demos`` episodes (by seed) as one ``DemoBatch``."""
    from datasets import load_dataset

    root = Path(dataset_dir)
    read_meta(root)
    shards = sorted((root / "data").glob("episode-*.parquet"))[: max_demos or None]
    if not shards:
        raise ConfigError(f"{root}/data holds no episodes", key="sft.dataset_path",
                          fix="collect some with `rlvla collect-demos`")
    data = load_dataset("parquet", data_files=[str(p) for p in shards], split="train").with_format("numpy")
    seeds = np.asarray(data["episode_seed"])
    images = np.stack(data["main_image"]).astype(np.uint8)
    wrist = np.stack(data["wrist_image"]).astype(np.uint8) if "wrist_image" in data.column_names else None
    states = np.stack(data["state"]).astype(np.float32)
    actions = np.stack(data["action"]).astype(np.float32)
    texts = list(data["task_description"])
    chunks, masks = [], []
    for seed in dict.fromkeys(seeds.tolist()):  # episodes in file order; rows of one episode are contiguous
        rows = np.nonzero(seeds == seed)[0]
        chunk, mask = action_chunks(actions[rows], num_action_chunks)
        chunks.append(chunk)
        masks.append(mask)
    return DemoBatch(
        main_images=torch.from_numpy(images),
        wrist_images=None if wrist is None else torch.from_numpy(wrist),
        states=torch.from_numpy(states),
        actions=torch.from_numpy(np.concatenate(chunks)),
        mask=torch.from_numpy(np.concatenate(masks)),
        task_descriptions=[str(t) for t in texts],
    )


def dataset_statistics(dataset_dir: str | Path, unnorm_key: str | None) -> tuple[dict, str]:
    """(all statistics, the key to use) from ``dataset_statistics.json``."""
    root = Path(dataset_dir)
    meta = read_meta(root)
    stats = json.loads((root / "dataset_statistics.json").read_text())
    key = unnorm_key or meta.get("unnorm_key") or next(iter(stats))
    if key not in stats:
        raise ConfigError(f"{root}/dataset_statistics.json has no entry {key!r}", key="sft.unnorm_key",
                          fix=f"use one of {sorted(stats)}")
    return stats, key

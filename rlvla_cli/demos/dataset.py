"""Demonstrations on disk: one parquet shard per episode, readable by Hugging Face ``datasets``.

Layout of ``DIR``::

    data/episode-0000042.parquet   one row per step (the seed is in the name; rows carry it too)
    progress.json                  seeds tried and failed (so a resumed run does not retry them)
    meta.json                      env settings, the instruction, counts
    dataset_statistics.json        OpenVLA-style action / proprio statistics (q01 / q99 for un-normalisation)

Read back with ``datasets.load_dataset("parquet", data_files=f"{DIR}/data/*.parquet")``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from rlvla_cli.demos.replay import ReplayedEpisode


def episode_path(out_dir: Path, seed: int) -> Path:
    return out_dir / "data" / f"episode-{seed:07d}.parquet"


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def features(has_wrist: bool):
    """The ``datasets`` schema of a step row."""
    from datasets import Features, Image, Sequence, Value

    cols = {
        "episode_seed": Value("int64"),
        "step": Value("int32"),
        "task_description": Value("string"),
        "main_image": Image(),
        "state": Sequence(Value("float32")),
        "action": Sequence(Value("float32")),
        "is_last": Value("bool"),
    }
    if has_wrist:
        cols["wrist_image"] = Image()
    return Features(cols)


def write_episode(out_dir: Path, episode: ReplayedEpisode) -> Path:
    """Write one episode atomically (temp file, then rename) so a killed run leaves no half shard."""
    from datasets import Dataset

    n = len(episode.actions)
    rows = {
        "episode_seed": [episode.seed] * n,
        "step": list(range(n)),
        "task_description": [episode.task_description] * n,
        "main_image": [{"bytes": _png(img), "path": None} for img in episode.main_images],
        "state": episode.states.tolist(),
        "action": episode.actions.tolist(),
        "is_last": [i == n - 1 for i in range(n)],
    }
    if episode.wrist_images is not None:
        rows["wrist_image"] = [{"bytes": _png(img), "path": None} for img in episode.wrist_images]
    final = episode_path(out_dir, episode.seed)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_suffix(".parquet.tmp")
    Dataset.from_dict(rows, features=features(episode.wrist_images is not None)).to_parquet(str(tmp))
    os.replace(tmp, final)
    return final


def completed_seeds(out_dir: Path) -> set[int]:
    """Seeds whose episode shard exists."""
    return {int(p.stem.split("-")[1]) for p in (out_dir / "data").glob("episode-*.parquet")}


def load_progress(out_dir: Path) -> dict:
    path = out_dir / "progress.json"
    return json.loads(path.read_text()) if path.exists() else {"failed_seeds": []}


def save_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def action_statistics(actions: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension statistics of ``actions`` float32 ``[N, A]``, in OpenVLA's dataset_statistics format."""
    return {
        "mean": actions.mean(0).tolist(),
        "std": actions.std(0).tolist(),
        "min": actions.min(0).tolist(),
        "max": actions.max(0).tolist(),
        "q01": np.quantile(actions, 0.01, axis=0).tolist(),
        "q99": np.quantile(actions, 0.99, axis=0).tolist(),
        # the gripper (last dim) is binary: OpenVLA leaves it un-normalised
        "mask": [True] * (actions.shape[1] - 1) + [False],
    }


def write_statistics(out_dir: Path, unnorm_key: str) -> dict:
    """Compute action / proprio statistics over every stored step and write dataset_statistics.json."""
    import pyarrow.parquet as pq

    tables = [pq.read_table(p, columns=["action", "state"]) for p in sorted((out_dir / "data").glob("*.parquet"))]
    actions = np.concatenate([np.asarray(t.column("action").to_pylist(), dtype=np.float32) for t in tables])
    states = np.concatenate([np.asarray(t.column("state").to_pylist(), dtype=np.float32) for t in tables])
    stats = {
        unnorm_key: {
            "action": action_statistics(actions),
            "proprio": {k: v for k, v in action_statistics(states).items() if k != "mask"},
            "num_transitions": int(len(actions)),
            "num_trajectories": len(tables),
        }
    }
    save_json(out_dir / "dataset_statistics.json", stats)
    return stats

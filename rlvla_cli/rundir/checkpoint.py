"""Checkpoint files: atomic directories, RNG states, HF-format policy weights, run state; resume lookup.

Layout of one checkpoint (``<run_dir>/checkpoints/global_step_<N>/``)::

    policy/              policy.save_pretrained(): HF safetensors (a peft adapter for LoRA policies)
    engine/              DeepSpeed engine state per trainer rank (module, optimizer, ZeRO partitions)
    rng/rank_<r>.pt      torch / numpy / python (/ cuda) RNG of trainer rank r
    rng/driver.pt        the driver's RNG plus the env workers' generator states
    trainer_state.json   step counters, weight version, skipped-step counts
    config.yaml          the resolved config (rlvla_cli.config.loader.dump_config)
    manifest.json        size (and CRC-32 up to CHECKSUM_LIMIT bytes) of every other file, written last

Every rank writes into a staging directory ``global_step_<N>.tmp-<token>``; once all are done the driver
fsyncs every file and renames the directory into place, so a crash never leaves a half checkpoint under the
final name (a leftover ``.tmp-`` directory is ignored and removed by the next prune).

Resuming checks a checkpoint against its manifest first (:func:`verify`): a truncated or corrupted file is named
in a ``CheckpointError``, and ``resume_candidates`` lists the older checkpoints to fall back to.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlvla_cli.errors import CheckpointError, UserError

CHECKPOINT_DIR = "checkpoints"
_STEP_DIR = re.compile(r"^global_step_(\d+)$")
TRAINER_STATE = "trainer_state.json"
MANIFEST = "manifest.json"
CHECKSUM_LIMIT = 1 << 30  # files up to 1 GiB get a CRC-32 (a few hundred ms each); bigger ones their size only
_CHUNK = 1 << 22


def checkpoints_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def staging_dir(run_dir: str | Path, step: int) -> Path:
    """A fresh staging directory for step ``step`` (created)."""
    path = checkpoints_root(run_dir) / f"global_step_{step}.tmp-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file, then every directory bottom-up, so the data is on disk before the rename."""
    dirs = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        dirs.append(Path(dirpath))
    for directory in reversed(dirs):
        _fsync_path(directory)


def _crc32(path: Path) -> int:
    value = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            value = zlib.crc32(chunk, value)
    return value


def write_manifest(directory: Path) -> None:
    """``manifest.json``: ``{"files": {relative path: {"size": bytes, "crc32": int | null}}}`` of every file."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        size = path.stat().st_size
        files[path.relative_to(directory).as_posix()] = {
            "size": size, "crc32": _crc32(path) if size <= CHECKSUM_LIMIT else None}
    write_json(directory / MANIFEST, {"files": files})


def verify(checkpoint: Path) -> None:
    """Check every file of ``checkpoint`` against its manifest; a ``CheckpointError`` names the first bad file.

    A checkpoint without a manifest (written before manifests existed) passes; its loading errors are named
    by the caller instead.
    """
    manifest = checkpoint / MANIFEST
    if not manifest.is_file():
        return
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _corrupt(manifest, f"unreadable ({err})") from None
    for name, entry in files.items():
        path = checkpoint / name
        if not path.is_file():
            raise _corrupt(path, "is missing")
        size = path.stat().st_size
        if size != entry["size"]:
            raise _corrupt(path, f"has {size} bytes, {entry['size']} were written (truncated)")
        if entry.get("crc32") is not None and _crc32(path) != entry["crc32"]:
            raise _corrupt(path, "does not match the checksum written with it (corrupted)")


def _corrupt(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint file {path} {what}", key="runner.resume_dir",
                           fix="resume from an older checkpoint (runner.resume_dir=<its directory>) or start afresh")


def commit(staging: Path, step: int) -> Path:
    """Write the manifest, fsync ``staging`` and rename it to ``global_step_<step>`` (replacing an older one)."""
    final = staging.parent / f"global_step_{step}"
    write_manifest(staging)
    fsync_tree(staging)
    if final.exists():
        trash = staging.parent / f"{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        os.replace(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, final)
    _fsync_path(staging.parent)
    return final


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Committed checkpoints as ``(step, path)``, oldest first."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found)


def prune(run_dir: str | Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` checkpoints (<= 0 keeps all); remove stale staging directories."""
    root = checkpoints_root(run_dir)
    if root.is_dir():
        for path in root.iterdir():
            if ".tmp-" in path.name or ".old-" in path.name:
                shutil.rmtree(path, ignore_errors=True)
    if keep_last > 0:
        for _, path in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(path, ignore_errors=True)


def resolve_resume_dir(resume_dir: str | None, run_dir: str | Path) -> Path | None:
    """``runner.resume_dir``: None -> no resume; ``auto`` -> newest checkpoint of the run dir (None if there is
    none); a path -> that checkpoint, or the newest one inside it when it is a run directory."""
    found = resume_candidates(resume_dir, run_dir)
    return found[0] if found else None


def resume_candidates(resume_dir: str | None, run_dir: str | Path) -> list[Path]:
    """The checkpoints ``runner.resume_dir`` may resume from, in the order to try them: newest first for ``auto``
    or a run directory (the older ones are the fallbacks when the newest is corrupted), just the one for a
    checkpoint directory; empty for None (or ``auto`` without checkpoints)."""
    if resume_dir is None:
        return []
    if resume_dir == "auto":
        return [path for _, path in reversed(list_checkpoints(run_dir))]
    path = Path(resume_dir).expanduser()
    if (path / TRAINER_STATE).is_file():
        return [path]
    found = list_checkpoints(path)
    if found:
        return [p for _, p in reversed(found)]
    raise UserError(
        f"`{path}` is not a checkpoint (no {TRAINER_STATE}) and holds no checkpoints/global_step_* directory",
        key="runner.resume_dir",
        fix="point it at <run_dir>/checkpoints/global_step_<N>, at a run directory, or use `auto`",
    )


def capture_rng_state() -> dict[str, Any]:
    """RNG state of this process: python, numpy, torch CPU (and every CUDA device when present)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rng(directory: Path, name: str, extra: dict[str, Any] | None = None) -> None:
    """``directory/rng/<name>.pt`` with this process's RNG plus ``extra`` (e.g. env generator states)."""
    (directory / "rng").mkdir(parents=True, exist_ok=True)
    torch.save({"process": capture_rng_state(), "extra": extra or {}}, directory / "rng" / f"{name}.pt")


def load_rng(directory: Path, name: str) -> dict[str, Any]:
    """Restore this process's RNG from ``rng/<name>.pt``; returns the ``extra`` dict stored with it."""
    payload = torch.load(directory / "rng" / f"{name}.pt", weights_only=False)
    restore_rng_state(payload["process"])
    return payload["extra"]


def save_policy_weights(policy: torch.nn.Module, directory: Path) -> None:
    """HF-format weights: ``policy.save_pretrained`` when the policy has it (LoRA -> peft adapter), else the
    state dict as ``model.safetensors``."""
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(policy, "save_pretrained"):
        policy.save_pretrained(directory)
        return
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in policy.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / TRAINER_STATE).read_text())

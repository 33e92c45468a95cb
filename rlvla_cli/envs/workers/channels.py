"""Shared-memory tensor channels between env workers and the runtime (no pickling of images per step).

A :class:`ShmTensorBlock` is one ``multiprocessing.shared_memory`` segment holding several named torch
tensors at fixed offsets. The creator (the runtime) allocates it once from an :class:`ObsSpec` and owns
``unlink``; a worker attaches by name with the same layout. Only small control messages travel through
pipes. Text (instructions) is stored as utf-8 bytes ``[B, max_chars]`` plus lengths ``[B]``.

The step layout of one env group of B envs (``step_layout``):

| name | dtype / shape |
| --- | --- |
| ``actions`` | float32 ``[B, C_max, A]`` (written by the runtime) |
| ``reset_state_ids`` | int64 ``[B]`` (written by the runtime for an explicit reset) |
| ``obs.*`` / ``final.*`` | observation / final observation (see ``obs_layout``) |
| ``rewards`` | float32 ``[B, C_max]`` |
| ``terminations``, ``truncations``, ``success`` | bool ``[B, C_max]`` |
| ``final_mask`` | bool ``[B]`` |
| ``episode`` | float32 ``[5, B]`` (``EPISODE_METRICS`` order) |
| ``state_ids`` | int64 ``[B]`` (reset state id of each env's current episode) |
"""

from __future__ import annotations

import _posixshmem
import math
import uuid
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import numpy as np
import torch

from rlvla_cli.envs.base import Obs, ObsSpec

SHM_PREFIX = "rlvla_"
Layout = dict[str, tuple[tuple[int, ...], torch.dtype]]
_ALIGN = 64


def _nbytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    return math.prod(shape) * torch.empty((), dtype=dtype).element_size()


class ShmTensorBlock:
    """Named tensors in one shared-memory segment. ``create=True`` allocates (zeroed); otherwise attaches.

    Only the creator unlinks the segment; attaching processes just close their mapping.
    """

    def __init__(self, layout: Layout, name: str | None = None, create: bool = True):
        self.layout = dict(layout)
        offsets, total = {}, 0
        for key, (shape, dtype) in self.layout.items():
            offsets[key] = total
            total += -(-_nbytes(shape, dtype) // _ALIGN) * _ALIGN
        self.owner = create
        if create:
            name = name or f"{SHM_PREFIX}{uuid.uuid4().hex[:16]}"
            self.shm = shared_memory.SharedMemory(name=name, create=True, size=max(total, 1))
            self._tracker_pid = _tracker_pid()
        else:
            # Spawned workers share the creator's resource tracker (a set of names), so attaching adds nothing
            # to clean up; the creator's unlink is the one that counts.
            self.shm = shared_memory.SharedMemory(name=name, create=False)
        self.name = self.shm.name
        self.tensors: dict[str, torch.Tensor] = {}
        # Per process and side: "write:<prefix>" / "read:<prefix>" -> (texts, versions seen).
        self.text_cache: dict[str, tuple[list, list[int]]] = {}
        for key, (shape, dtype) in self.layout.items():
            count = math.prod(shape)
            flat = torch.frombuffer(self.shm.buf, dtype=dtype, count=count, offset=offsets[key]) if count else (
                torch.empty(0, dtype=dtype)
            )
            self.tensors[key] = flat.view(shape)
        if create:
            for tensor in self.tensors.values():
                tensor.zero_()

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def close(self) -> None:
        """Drop the tensor views and detach; the creator also unlinks the segment."""
        if self.shm is None:
            return
        self.tensors.clear()
        try:
            self.shm.close()
        except BufferError:  # a caller still holds a view; the segment is unlinked anyway
            pass
        if self.owner:
            try:
                if _tracker_alive(self._tracker_pid):
                    self.shm.unlink()
                else:  # the tracker was killed: a relaunched one never saw this name and would print a traceback
                    _posixshmem.shm_unlink(self.shm._name)
            except FileNotFoundError:
                pass
        self.shm = None


def _tracker_pid() -> int | None:
    """Pid of this process's multiprocessing resource tracker (it unlinks our segments if we are killed)."""
    return getattr(resource_tracker._resource_tracker, "_pid", None)


def _tracker_alive(pid: int | None) -> bool:
    """Whether the resource tracker that registered a segment still runs (Linux: /proc state; else assume so)."""
    if pid is None or pid != _tracker_pid():
        return pid is None  # no tracker in use, or a relaunched one that does not know the segment
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return not Path("/proc/self").exists()  # no /proc: cannot tell
    return state not in ("Z", "X")


def obs_layout(spec: ObsSpec, batch: int, prefix: str) -> Layout:
    """Layout entries of one observation batch under ``prefix`` (``obs`` or ``final``): ``main_images`` uint8
    ``[B, H, W, 3]``, optional ``wrist_images``, ``states`` float32 ``[B, S]``, ``text`` uint8 ``[B, L]``,
    ``text_len`` int32 ``[B]``, ``text_version`` int64 ``[B]`` (bumped when a row's text changes, so texts,
    which change only on resets, are encoded and decoded once per episode, not per step)."""
    layout: Layout = {
        f"{prefix}.main_images": ((batch, *spec.image_shape), torch.uint8),
        f"{prefix}.states": ((batch, spec.state_dim), torch.float32),
        f"{prefix}.text": ((batch, spec.max_instruction_chars), torch.uint8),
        f"{prefix}.text_len": ((batch,), torch.int32),
        f"{prefix}.text_version": ((batch,), torch.int64),
    }
    if spec.has_wrist:
        layout[f"{prefix}.wrist_images"] = ((batch, *spec.image_shape), torch.uint8)
    return layout


def step_layout(spec: ObsSpec, batch: int, max_chunk: int, action_dim: int, num_metrics: int = 5) -> Layout:
    """The whole layout of one env group's channel (see the module docstring)."""
    layout: Layout = {
        "actions": ((batch, max_chunk, action_dim), torch.float32),
        "reset_state_ids": ((batch,), torch.int64),
        "rewards": ((batch, max_chunk), torch.float32),
        "terminations": ((batch, max_chunk), torch.bool),
        "truncations": ((batch, max_chunk), torch.bool),
        "success": ((batch, max_chunk), torch.bool),
        "final_mask": ((batch,), torch.bool),
        "episode": ((num_metrics, batch), torch.float32),
        "state_ids": ((batch,), torch.int64),
    }
    layout.update(obs_layout(spec, batch, "obs"))
    layout.update(obs_layout(spec, batch, "final"))
    return layout


def encode_text(texts: list[str], out: torch.Tensor, lengths: torch.Tensor) -> None:
    """Write utf-8 ``texts`` into ``out`` uint8 ``[B, L]`` (truncated to L bytes, zero-padded) and ``lengths``
    ``[B]``. Rows go through numpy views: a torch op per row costs ~10x more, and every chunk re-encodes the
    instructions of the envs that just reset."""
    data, sizes = out.numpy(), lengths.numpy()
    width = data.shape[1]
    for row, text in enumerate(texts):
        raw = text.encode("utf-8")[:width]
        data[row, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        data[row, len(raw) :] = 0
        sizes[row] = len(raw)


def decode_text(data: torch.Tensor, lengths: torch.Tensor, rows: list[int] | None = None) -> list[str]:
    """Inverse of :func:`encode_text` for the given rows (default all)."""
    rows = range(data.shape[0]) if rows is None else rows
    array, sizes = data.numpy(), lengths.numpy()
    return [array[r, : int(sizes[r])].tobytes().decode("utf-8", errors="ignore") for r in rows]


def write_obs(block: ShmTensorBlock, prefix: str, obs: Obs, rows: torch.Tensor | None = None) -> None:
    """Copy an observation dict into the block's ``prefix`` tensors (texts only where they changed).

    rows: int64 ``[K]``, write only these envs (final observations, valid only where an episode ended: a chunk
    usually ends few episodes, and the full image batch is the largest copy of a step)."""
    keys = ["main_images", "states"] + (["wrist_images"] if f"{prefix}.wrist_images" in block else [])
    for key in keys:
        if rows is None:
            block[f"{prefix}.{key}"].copy_(obs[key])
        else:
            index = rows.numpy()  # numpy fancy indexing: ~5x faster than index_copy_ for a few image rows
            block[f"{prefix}.{key}"].numpy()[index] = obs[key].numpy()[index]
    texts = list(obs["task_descriptions"])
    cached, _ = block.text_cache.setdefault(f"write:{prefix}", ([None] * len(texts), []))
    candidates = range(len(texts)) if rows is None else rows.tolist()
    changed = [row for row in candidates if cached[row] != texts[row]]
    if changed:
        data, lengths, versions = (block[f"{prefix}.{k}"] for k in ("text", "text_len", "text_version"))
        rows_changed = torch.tensor(changed)
        scratch = torch.empty(len(changed), data.shape[1], dtype=torch.uint8)
        scratch_len = torch.empty(len(changed), dtype=lengths.dtype)
        encode_text([texts[r] for r in changed], scratch, scratch_len)
        # text and length land before the version bump that tells the reader to decode them again
        data[rows_changed], lengths[rows_changed] = scratch, scratch_len
        versions[rows_changed] += 1
        for row in changed:
            cached[row] = texts[row]


def read_obs(block: ShmTensorBlock, prefix: str, copy: bool = True, rows: torch.Tensor | None = None) -> Obs:
    """The observation dict stored under ``prefix`` (``copy`` detaches the tensors from shared memory).

    rows: int64 ``[K]``, copy only these envs into zero-filled full-batch tensors (the counterpart of
    ``write_obs(..., rows)``; the other rows are not valid in shared memory)."""

    def take(key: str) -> torch.Tensor:
        tensor = block[f"{prefix}.{key}"]
        if rows is not None:
            out, index = torch.zeros_like(tensor), rows.numpy()
            out.numpy()[index] = tensor.numpy()[index]
            return out
        return tensor.clone() if copy else tensor

    obs: Obs = {"main_images": take("main_images"), "states": take("states")}
    if f"{prefix}.wrist_images" in block:
        obs["wrist_images"] = take("wrist_images")
    versions = block[f"{prefix}.text_version"].tolist()
    texts, seen = block.text_cache.setdefault(f"read:{prefix}", ([""] * len(versions), [-1] * len(versions)))
    stale = [row for row, version in enumerate(versions) if version != seen[row]]
    if stale:
        decoded = decode_text(block[f"{prefix}.text"], block[f"{prefix}.text_len"], stale)
        for row, text in zip(stale, decoded, strict=True):
            texts[row], seen[row] = text, versions[row]
    obs["task_descriptions"] = list(texts)
    return obs


def cat_obs(parts: list[Obs]) -> Obs:
    """Concatenate observation dicts along the batch dimension."""
    if len(parts) == 1:
        return parts[0]
    out: Obs = {}
    for key in parts[0]:
        if key == "task_descriptions":
            out[key] = [text for part in parts for text in part[key]]
        else:
            out[key] = torch.cat([part[key] for part in parts], dim=0)
    return out


def list_segments() -> set[str]:
    """Names of this project's shared-memory segments currently in /dev/shm (leak checks)."""
    import os

    try:
        return {name for name in os.listdir("/dev/shm") if name.startswith(SHM_PREFIX)}
    except FileNotFoundError:
        return set()

"""Rollout videos: the first ``max_envs`` envs tiled per frame with an overlay (step, reward, success).

:class:`VideoRecorder` hooks into :class:`~rlvla_cli.envs.episode.EpisodeVecEnv` (``env.recorder``). Frames are
composed on the stepping thread (cheap tensor ops) and encoded to mp4 by a background thread, so encoding
never blocks a step. One file per recorded rollout: ``<dir>/<tag>_rollout<k>.mp4``; a rollout runs from one
``reset()`` to the next (or ``close()``).
"""

from __future__ import annotations

import math
import queue
import threading
from pathlib import Path

import numpy as np
import torch

MIN_TILE = 128  # small observations are enlarged so the overlay stays readable


def tile_frames(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> one uint8 ``[rows*H', cols*W', 3]`` grid (enlarged by an integer factor)."""
    count, height, width, _ = images.shape
    scale = max(1, math.ceil(MIN_TILE / max(height, width)))
    if scale > 1:
        images = images.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    pad = rows * cols - count
    if pad:
        images = torch.cat([images, images.new_zeros(pad, *images.shape[1:])])
    h, w = images.shape[1:3]
    return images.view(rows, cols, h, w, 3).permute(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)


def draw_overlay(frame: np.ndarray, labels: list[str], tile_hw: tuple[int, int], cols: int) -> np.ndarray:
    """Write ``labels[i]`` in the top-left corner of tile i of ``frame`` uint8 ``[H, W, 3]``."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    for index, text in enumerate(labels):
        top, left = (index // cols) * tile_hw[0], (index % cols) * tile_hw[1]
        draw.rectangle([left, top, left + 7 * len(text) + 4, top + 12], fill=(0, 0, 0))
        draw.text((left + 2, top + 1), text, fill=(255, 255, 255))
    return np.asarray(image)


def pad_to_macro_block(frame: np.ndarray, block: int = 16) -> np.ndarray:
    """Pad height and width to multiples of ``block`` (what H.264 encoders want)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, -h % block), (0, -w % block), (0, 0)))


class VideoWriterThread:
    """Encodes queued frame lists to mp4 files in a daemon thread (imageio + ffmpeg)."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="rlvla-video", daemon=True)
        self._thread.start()
        self.written: list[Path] = []
        self.errors: list[str] = []

    def submit(self, path: Path, frames: list[np.ndarray], fps: int) -> None:
        self._queue.put((path, frames, fps))

    def _run(self) -> None:
        import imageio.v2 as imageio

        while True:
            item = self._queue.get()
            if item is None:
                return
            path, frames, fps = item
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1) as writer:
                    for frame in frames:
                        writer.append_data(frame)
                self.written.append(path)
            except Exception as err:  # noqa: BLE001 - a failed video must not stop training
                self.errors.append(f"{path}: {err}")

    def close(self, timeout_s: float = 60.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)


class VideoRecorder:
    """Collects tiled frames of one rollout and hands them to the writer thread (see the module docstring)."""

    def __init__(self, video_cfg, out_dir: str | Path, tag: str = "env"):
        self.cfg, self.out_dir, self.tag = video_cfg, Path(out_dir), tag
        self.writer = VideoWriterThread()
        self._frames: list[np.ndarray] = []
        self._rollout = -1
        self._recording = False
        self._step = 0

    def _compose(self, images: torch.Tensor, labels: list[str] | None) -> np.ndarray:
        images = images[: self.cfg.max_envs]
        grid = tile_frames(images).numpy()
        if labels is not None and self.cfg.info_on_video:
            count = images.shape[0]
            cols = math.ceil(math.sqrt(count))
            tile_hw = (grid.shape[0] // math.ceil(count / cols), grid.shape[1] // cols)
            grid = draw_overlay(grid, labels[:count], tile_hw, cols)
        return pad_to_macro_block(grid)

    def on_reset(self, obs: dict) -> None:
        self.flush()
        self._rollout += 1
        self._recording = self._rollout % self.cfg.every_n_rollouts == 0
        self._step = 0
        if self._recording:
            self._frames.append(self._compose(obs["main_images"], None))

    def on_step(self, obs_fn, rewards: torch.Tensor, success: torch.Tensor) -> None:
        """obs_fn: returns the current obs (called only while recording, so idle rollouts render nothing)."""
        if not self._recording:
            return
        self._step += 1
        labels = [f"t{self._step} r{float(r):+.2f}{' OK' if bool(ok) else ''}"
                  for r, ok in zip(rewards.tolist(), success.tolist(), strict=True)]
        self._frames.append(self._compose(obs_fn()["main_images"], labels))

    def on_chunk_end(self, final_mask: torch.Tensor) -> None:
        """Nothing to do per chunk: episodes that end keep their tile (auto-reset shows the new episode)."""

    def flush(self) -> None:
        if self._frames:
            path = self.out_dir / f"{self.tag}_rollout{self._rollout:05d}.mp4"
            self.writer.submit(path, self._frames, self.cfg.fps)
        self._frames = []

    def close(self) -> None:
        self.flush()
        self.writer.close()

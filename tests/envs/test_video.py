"""Video recording: tiling, overlay, mp4 written by the background thread, controlled by video_cfg."""

from __future__ import annotations

import imageio.v2 as imageio
import torch

from rlvla_cli.config.env import BuiltinEnvConfig
from rlvla_cli.envs.registry import build_env
from rlvla_cli.envs.video import tile_frames


def test_tile_frames_places_envs_row_major_and_enlarges_small_images():
    images = torch.stack([torch.full((64, 64, 3), i * 40, dtype=torch.uint8) for i in range(3)])
    grid = tile_frames(images)
    assert grid.shape == (256, 256, 3)  # 2x2 grid of 128x128 tiles
    assert grid[0, 0, 0] == 0 and grid[0, 200, 0] == 40 and grid[200, 0, 0] == 80 and grid[200, 200, 0] == 0


def test_rollout_videos_are_written_off_the_stepping_thread(tmp_path):
    cfg = BuiltinEnvConfig(total_num_envs=4, max_episode_steps=5,
                           video_cfg={"save_video": True, "max_envs": 3, "fps": 5, "every_n_rollouts": 2})
    env = build_env(cfg, video_dir=str(tmp_path), video_tag="train")
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # rollouts 0 and 2 are recorded
        env.reset()
        for _ in range(3):
            actions = torch.rand(4, 2, 7, generator=generator) * 2 - 1
            actions[..., 6] = 1.0  # gripper open: no env can succeed early, so all truncate at step 5
            env.chunk_step(actions)
    recorder = env.recorder
    env.close()
    assert recorder.writer.errors == []
    files = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert files == ["train_rollout00000.mp4", "train_rollout00002.mp4"]
    frames = imageio.mimread(tmp_path / files[0])
    # reset frame + steps 1-5; every env truncates at step 5, so the last chunk's second step is skipped
    assert len(frames) == 1 + 5 and frames[0].shape == (256, 256, 3)

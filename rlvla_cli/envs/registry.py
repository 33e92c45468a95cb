"""Build a :class:`VecEnv` from an env config; simulator packages are imported only when their env is built."""

from __future__ import annotations

from rlvla_cli.config.env import (
    BuiltinEnvConfig,
    EnvConfigBase,
    LiberoEnvConfig,
    ManiSkillEnvConfig,
    MetaWorldEnvConfig,
)
from rlvla_cli.envs.base import VecEnv
from rlvla_cli.envs.episode import EpisodeSettings


def build_env(
    env_cfg: EnvConfigBase,
    num_envs: int | None = None,
    seed: int | None = None,
    *,
    env_offset: int = 0,
    video_dir: str | None = None,
    video_tag: str = "env",
) -> VecEnv:
    """Construct ``num_envs`` envs (default ``env_cfg.total_num_envs``) of the configured simulator.

    seed: overrides ``env_cfg.seed``. env_offset: global index of the first env (an env worker passes its
    slice start so GRPO groups and reset ids are consistent across workers). video_dir: where videos go
    when ``env_cfg.video_cfg.save_video`` (default: ``video_cfg.video_base_dir``); video_tag names the files.
    """
    num_envs = env_cfg.total_num_envs if num_envs is None else num_envs
    settings = EpisodeSettings.from_config(env_cfg, env_offset=env_offset, seed=seed)
    if isinstance(env_cfg, BuiltinEnvConfig):
        from rlvla_cli.envs.builtin import BuiltinTabletopEnv

        env = BuiltinTabletopEnv(num_envs, env_cfg.init_params, settings)
    elif isinstance(env_cfg, ManiSkillEnvConfig):
        from rlvla_cli.envs.maniskill import ManiSkillVecEnv

        env = ManiSkillVecEnv(num_envs, env_cfg.init_params, settings)
    elif isinstance(env_cfg, LiberoEnvConfig):
        from rlvla_cli.envs.libero import LiberoVecEnv

        env = LiberoVecEnv(num_envs, env_cfg.init_params, settings)
    elif isinstance(env_cfg, MetaWorldEnvConfig):
        from rlvla_cli.envs.metaworld import MetaWorldVecEnv

        env = MetaWorldVecEnv(num_envs, env_cfg.init_params, settings)
    else:
        raise TypeError(f"unknown env config type {type(env_cfg).__name__}")
    video = env_cfg.video_cfg
    if video.save_video:
        from rlvla_cli.envs.video import VideoRecorder

        env.recorder = VideoRecorder(video, video_dir or video.video_base_dir, tag=video_tag)
    return env

"""Helpers for the tiny pi0 / pi0.5 tests (CPU, fp32): configs and observations."""

from __future__ import annotations

import torch

from rlvla_cli.config.model_openpi import OpenPIModelConfig


def tiny_config(**overrides) -> OpenPIModelConfig:
    """A tiny openpi config: horizon 6, 4 executed actions of 7 dims, fp32."""
    pi05 = overrides.get("pi05", False)
    base = dict(size="tiny", precision="fp32", action_horizon=6, num_action_chunks=4, max_token_len=96 if pi05 else 24)
    base.update(overrides)
    return OpenPIModelConfig(**base)


def make_obs(batch: int = 3, seed: int = 0, state_dim: int = 8) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "main_images": torch.randint(0, 256, (batch, 40, 40, 3), generator=gen, dtype=torch.uint8),
        "wrist_images": torch.randint(0, 256, (batch, 40, 40, 3), generator=gen, dtype=torch.uint8),
        "states": torch.rand(batch, state_dim, generator=gen) * 2 - 1,
        "task_descriptions": ["put the red cube on the plate", "open_the drawer", "pick up the bowl"][:batch]
        + ["stack"] * max(0, batch - 3),
    }

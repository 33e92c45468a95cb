"""The critic head PPO trains next to the policy: an MLP from one feature vector to V values."""

from __future__ import annotations

import torch
from torch import nn


class ValueHead(nn.Module):
    """MLP ``[..., in_dim] -> [..., num_values]`` (V = 1 for chunk-level values, C for action-level ones).

    The last layer starts at zero so the first value estimates are 0 and do not disturb early advantages.
    Computed in the weights' dtype (fp32 by the builders), inputs cast to it. With fp32 weights autocast is
    switched off here: inside the trainer's bf16 region (``actor.deepspeed.bf16``) the matmuls would otherwise
    run in bf16 and the value loss gets noisy.
    """

    def __init__(self, in_dim: int, num_values: int = 1, hidden_dim: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim // 4),
            nn.GELU(),
            nn.Linear(hidden_dim // 4, num_values),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features ``[B, in_dim]`` (any dtype) -> values float32 ``[B, V]``."""
        weight_dtype = self.net[0].weight.dtype
        if weight_dtype == torch.float32:  # stays fp32 inside the trainer's autocast region
            with torch.autocast(device_type=features.device.type, enabled=False):
                return self.net(features.float())
        return self.net(features.to(weight_dtype)).float()

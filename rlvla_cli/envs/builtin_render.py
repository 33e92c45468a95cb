"""Vectorised top-down renderer of the built-in tabletop task (pure torch, no graphics library).

The table spans ``[-1, 1]^2`` in task units; image row 0 is the table's far edge (y = +1), column 0 is x = -1.
"""

from __future__ import annotations

import torch

# (name, RGB) of the objects; names are what the instructions say.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (220, 40, 40)),
    ("green", (40, 180, 60)),
    ("blue", (40, 80, 230)),
    ("yellow", (235, 215, 40)),
    ("purple", (150, 60, 190)),
    ("orange", (245, 140, 30)),
)
PALETTE_RGB = torch.tensor([rgb for _, rgb in PALETTE], dtype=torch.uint8)
TABLE_RGB = torch.tensor([150, 120, 90], dtype=torch.uint8)
BORDER_RGB = torch.tensor([90, 70, 50], dtype=torch.uint8)
GRIPPER_OPEN_RGB = torch.tensor([255, 255, 255], dtype=torch.uint8)
GRIPPER_CLOSED_RGB = torch.tensor([20, 20, 20], dtype=torch.uint8)
OBJECT_HALF_SIZE = 0.13
GRIPPER_ARM_LENGTH = 0.16
GRIPPER_ARM_WIDTH = 0.045


class TabletopRenderer:
    """Draws B scenes at once into uint8 ``[B, H, W, 3]``; the pixel grid is built once per image size."""

    def __init__(self, image_size: int):
        self.image_size = image_size
        centres = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2.0 - 1.0
        self._grid_x = centres.view(1, 1, image_size)  # [1, 1, W]
        self._grid_y = centres.flip(0).view(1, image_size, 1)  # [1, H, 1]; row 0 is y = +1
        border = (self._grid_x.abs() > 0.97) | (self._grid_y.abs() > 0.97)
        self._background = torch.where(border.unsqueeze(-1), BORDER_RGB, TABLE_RGB)  # [H, W, 3]

    def render(
        self, object_xy: torch.Tensor, object_colour: torch.Tensor, gripper_xy: torch.Tensor, closed: torch.Tensor
    ) -> torch.Tensor:
        """object_xy float ``[B, K, 2]``, object_colour int64 ``[B, K]`` (palette index), gripper_xy
        ``[B, 2]``, closed bool ``[B]`` -> uint8 ``[B, H, W, 3]``."""
        batch, num_objects = object_colour.shape
        size = self.image_size
        image = self._background.expand(batch, size, size, 3).clone()
        for k in range(num_objects):
            dx = (self._grid_x - object_xy[:, k, 0].view(-1, 1, 1)).abs()
            dy = (self._grid_y - object_xy[:, k, 1].view(-1, 1, 1)).abs()
            mask = (dx < OBJECT_HALF_SIZE) & (dy < OBJECT_HALF_SIZE)  # [B, H, W]
            colour = PALETTE_RGB[object_colour[:, k]].view(batch, 1, 1, 3)
            image = torch.where(mask.unsqueeze(-1), colour, image)
        # The gripper is a cross drawn on top: white when open, black when closed.
        dx = (self._grid_x - gripper_xy[:, 0].view(-1, 1, 1)).abs()
        dy = (self._grid_y - gripper_xy[:, 1].view(-1, 1, 1)).abs()
        pixel = max(1.0 / size, GRIPPER_ARM_WIDTH)
        cross = ((dx < pixel) & (dy < GRIPPER_ARM_LENGTH)) | ((dy < pixel) & (dx < GRIPPER_ARM_LENGTH))
        colour = torch.where(closed.view(-1, 1, 1, 1), GRIPPER_CLOSED_RGB, GRIPPER_OPEN_RGB)
        return torch.where(cross.unsqueeze(-1), colour, image)

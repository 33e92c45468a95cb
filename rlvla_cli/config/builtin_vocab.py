"""The built-in task's words and colours, torch-free so the config validators can check names against them."""

from __future__ import annotations

PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (220, 40, 40)),
    ("green", (40, 180, 60)),
    ("blue", (40, 80, 230)),
    ("yellow", (235, 215, 40)),
    ("purple", (150, 60, 190)),
    ("orange", (245, 140, 30)),
)

PHRASINGS = (
    "pick up the {c} block",
    "grasp the {c} cube",
    "move the gripper to the {c} object and grab it",
    "reach the {c} square and close the gripper",
    "get the {c} one",
)

"""Runtime tests: put this folder on sys.path so `tiny_policy` (the tiny policy and synthetic rollouts) is
importable by name, also in spawned child processes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

"""CPU threads for rollout inference next to env worker processes.

Env workers each keep a core busy while the rollout policy infers on the CPU; an intra-op pool as wide as the
machine then oversubscribes it (measured on 2 cores: a tiny OFT ``predict`` went from ~15 ms to ~700 ms).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def rollout_threads(cpus: int, env_workers: int) -> int:
    """Intra-op threads for CPU inference that leave one core to each env worker (at least 1)."""
    return max(1, cpus - env_workers)


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)`` and restore the previous count (None: as is)."""
    previous = torch.get_num_threads()
    if num_threads is not None and num_threads != previous:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)

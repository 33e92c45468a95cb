"""CPU rollout threads next to env workers: one core per worker is left free; the count is restored."""

import torch

from rlvla_cli.runtime.threads import available_cpus, rollout_threads, torch_threads


def test_rollout_threads_leave_a_core_per_env_worker():
    assert rollout_threads(16, 4) == 12
    assert rollout_threads(2, 2) == 1 and rollout_threads(2, 8) == 1  # never below one
    assert available_cpus() >= 1


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    try:
        with torch_threads(1):
            raise RuntimeError("a failing rollout")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before

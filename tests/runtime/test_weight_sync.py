"""Weight sync: shared storage on one device (no copy), bucketed copies, torch.distributed broadcast."""

from __future__ import annotations

import torch
from tiny_policy import TinyPolicy

from rlvla_cli.runtime.launcher import free_port, spawn_process, stop_processes
from rlvla_cli.runtime.weight_sync import WeightSync, broadcast_weights, buckets


def test_same_device_shares_storage():
    torch.manual_seed(0)
    trainer, rollout = TinyPolicy(), TinyPolicy()
    sync = WeightSync(trainer, rollout)
    assert sync.mode == "share"
    assert sync.sync() == 1
    for p_train, p_roll in zip(trainer.parameters(), rollout.parameters(), strict=True):
        assert p_train.data_ptr() == p_roll.data_ptr()  # no copy
    with torch.no_grad():
        trainer.log_std.add_(1.0)  # an in-place optimizer step is visible at once
    assert torch.equal(rollout.log_std, trainer.log_std)


def test_dtype_change_copies_in_buckets():
    torch.manual_seed(0)
    trainer, rollout = TinyPolicy(), TinyPolicy().double()
    sync = WeightSync(trainer, rollout, bucket_bytes=64)
    assert sync.mode == "copy"
    sync.sync()
    for p_train, p_roll in zip(trainer.parameters(), rollout.parameters(), strict=True):
        assert p_roll.dtype == torch.float64 and torch.allclose(p_roll.float(), p_train)
        assert p_train.data_ptr() != p_roll.data_ptr()


def test_buckets_respect_size_and_dtype():
    tensors = [torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.float64), torch.zeros(100)]
    assert list(buckets(tensors, bucket_bytes=32)) == [[0, 1], [2], [3]]


def _broadcast_end(rank: int, port: int, queue) -> None:
    """One end of the broadcast in its own process (rank 0 sends version 7, rank 1 receives)."""
    from rlvla_cli.runtime.launcher import init_distributed, shutdown_distributed

    init_distributed(rank, 2, "cpu", master_port=port)
    torch.manual_seed(rank)  # different weights on the two ranks before the sync
    module = TinyPolicy()
    version = broadcast_weights(module, src=0, bucket_bytes=128, version=7 if rank == 0 else None)
    queue.put((rank, version, {k: v.clone() for k, v in module.state_dict().items()}))
    shutdown_distributed()


def test_broadcast_between_processes():
    import multiprocessing as mp

    port = free_port()
    queue = mp.get_context("spawn").Queue()
    procs = [spawn_process(_broadcast_end, (rank, port, queue), name=f"end{rank}") for rank in (0, 1)]
    try:
        results = dict((rank, (version, state)) for rank, version, state in (queue.get(timeout=90) for _ in procs))
    finally:
        stop_processes(procs, timeout_s=10)
    assert results[0][0] == results[1][0] == 7
    for key, value in results[0][1].items():
        assert torch.equal(results[1][1][key], value), key

"""Process plumbing: torch.distributed rendezvous, spawning trainer ranks.

One node: the driver is trainer rank 0 and spawns ranks 1..N-1 (``spawn`` start method) that join the same
process group (gloo on a CPU, NCCL on GPUs) through ``deepspeed.init_distributed``. Several nodes: ``torchrun``
starts one node driver per node and each driver spawns its node's other trainer ranks (runtime/distributed/).
Every collective of the group times out after ``cluster.collective_timeout_s`` (no hang on a dead peer).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from typing import Any

import torch


def free_port() -> int:
    """An unused TCP port on this machine for the rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backend_for(device: str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


_OWN_ENV: dict[str, str | None] = {}  # rendezvous variables set by init_distributed -> their previous values


def launched_externally() -> bool:
    """True when a launcher (``deepspeed``, ``torchrun``) started this process as one rank of several."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(rank: int, world_size: int, device: str, master_addr: str | None = None,
                     master_port: int | None = None, timeout_s: float | None = None,
                     local_rank: int | None = None, local_world: int | None = None) -> None:
    """Join the trainer process group (idempotent): env rendezvous + ``deepspeed.init_distributed``.

    Under an external launcher its RANK / WORLD_SIZE / LOCAL_RANK / MASTER_* variables are kept as they are.
    timeout_s: the collective timeout of the group (DeepSpeed's default, 600 s, when None).
    """
    from datetime import timedelta

    import deepspeed
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev.index or 0)
    if not launched_externally():
        values = dict(RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank if local_rank is None else local_rank),
                      LOCAL_WORLD_SIZE=str(world_size if local_world is None else local_world),
                      MASTER_ADDR=master_addr or "127.0.0.1",
                      MASTER_PORT=str(master_port or free_port()))
        _OWN_ENV.update({key: os.environ.get(key) for key in values if key not in _OWN_ENV})
        os.environ.update(values)
    kwargs = {} if timeout_s is None else {"timeout": timedelta(seconds=timeout_s)}
    deepspeed.init_distributed(dist_backend=backend_for(device), auto_mpi_discovery=False, verbose=False, **kwargs)


def shutdown_distributed() -> None:
    """Destroy the process group and DeepSpeed's cached groups, so a later run in this process starts fresh."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key, previous in _OWN_ENV.items():  # undo the rendezvous variables this process set itself
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous
    _OWN_ENV.clear()
    try:
        import deepspeed.comm.comm as ds_comm
        from deepspeed.utils import groups
    except ImportError:
        return
    for name, value in vars(groups).copy().items():
        if name.startswith("_") and name.endswith(("_GROUP", "_GROUP_RANKS")) and name.isupper():
            setattr(groups, name, {} if isinstance(value, dict) else None)
    ds_comm.cdb = None


def spawn_process(target, args: tuple, name: str) -> Any:
    """Start ``target(*args)`` in a fresh interpreter (spawn: no forked CUDA / thread state)."""
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=target, args=args, name=name, daemon=True)
    proc.start()
    return proc


def stop_processes(processes: list, timeout_s: float = 10.0) -> None:
    """Join, then terminate, then kill each process that is still alive, within about ``timeout_s``."""
    import time

    deadline = time.monotonic() + timeout_s
    for proc in processes:
        proc.join(timeout=max(0.05, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=2.0)

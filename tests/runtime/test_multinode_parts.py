"""Multi-node parts, fast: batch merge order, tensor transfer and the node weight broadcast between two gloo
processes, the torchrun / srun commands, and the collective timeout on a silent peer."""

from __future__ import annotations

import multiprocessing as mp
import time
from types import SimpleNamespace

import torch
from tiny_policy import TinyPolicy, synthetic_batch

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.runtime.distributed.launch import all_local, srun_recipe, torchrun_command
from rlvla_cli.runtime.distributed.merge import merge_node_batches
from rlvla_cli.runtime.distributed.transfer import batch_from_tensors, batch_to_tensors
from rlvla_cli.runtime.launcher import free_port, spawn_process, stop_processes


def _tagged_batch(envs: list[int]) -> RolloutBatch:
    """A batch whose env b carries its global env index in every reward (T = 2, C = 1)."""
    rewards = torch.tensor(envs, dtype=torch.float32).view(1, -1, 1).expand(2, -1, 1).clone()
    flags = torch.zeros(2, len(envs), 1, dtype=torch.bool)
    return RolloutBatch(forward_inputs={"x": rewards.clone()}, old_logprobs=rewards.unsqueeze(-1).clone(),
                        rewards=rewards, terminations=flags, truncations=flags.clone(),
                        loss_mask=torch.ones(2, len(envs), dtype=torch.bool), last_values=rewards[0].clone())


def test_merge_restores_single_node_env_order():
    # single pool: W = 3 workers (n = 2 envs each), S = 2 stages, E = 2 epochs -> B ordered (epoch, stage, w, i)
    workers, n, stages, epochs = 3, 2, 2, 2
    single = [e * 100 + s * workers * n + w * n + i
              for e in range(epochs) for s in range(stages) for w in range(workers) for i in range(n)]
    # node 0 runs worker 0, node 1 runs workers 1-2: each node's batch is (epoch, stage, its worker, i)
    nodes = [[e * 100 + s * workers * n + w * n + i
              for e in range(epochs) for s in range(stages) for w in ws for i in range(n)] for ws in ([0], [1, 2])]
    merged = merge_node_batches([_tagged_batch(envs) for envs in nodes], blocks=epochs * stages)
    assert merged.rewards[0, :, 0].tolist() == single
    assert merged.last_values[:, 0].tolist() == single  # env axis 0 fields follow too
    assert merged.forward_inputs["x"][1, :, 0].tolist() == single


def test_batch_tensor_round_trip():
    torch.manual_seed(0)
    batch = synthetic_batch(TinyPolicy())
    tensors = batch_to_tensors(batch, prefix="batch.")
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    back = batch_from_tensors({**tensors, "episodes.return": torch.zeros(3)}, prefix="batch.")
    for name, value in batch_to_tensors(batch).items():
        assert torch.equal(batch_to_tensors(back)[name], value), name


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[str, list]]:
    """Tensors as (dtype, nested list): a tensor put in a queue is shared through a file descriptor that the child
    must still serve when the parent reads it, a race once the child has exited."""
    return {name: (str(t.dtype), t.tolist()) for name, t in tensors.items()}


def _peer(rank: int, port: int, queue, action: str) -> None:
    """One of two processes of a 2-rank gloo world (timeout 2 s)."""
    from rlvla_cli.runtime.distributed.transfer import comm_errors, recv_tensors, send_tensors
    from rlvla_cli.runtime.distributed.weights import NodeWeightSync
    from rlvla_cli.runtime.launcher import init_distributed, shutdown_distributed
    from rlvla_cli.runtime.weight_sync import WeightSync

    init_distributed(rank, 2, "cpu", master_port=port, timeout_s=2.0)
    import torch.distributed as dist

    if action == "transfer":
        if rank == 0:
            tensors = {"images": torch.arange(24, dtype=torch.uint8).view(2, 3, 4),
                       "done": torch.tensor([True, False]), "x": torch.randn(5, dtype=torch.float64)}
            send_tensors(tensors, dst=1, extra={"env_steps": 11})
        else:
            tensors, extra = recv_tensors(src=0)
            queue.put((_plain(tensors), extra))
    elif action == "weights":
        group = dist.new_group(ranks=[0, 1], use_local_synchronization=True)
        torch.manual_seed(rank)  # the two processes start with different weights
        if rank == 0:
            trainer = TinyPolicy()
            copy = TinyPolicy()
            sync = NodeWeightSync(trainer, WeightSync(trainer, copy), None, group, is_source=True, bucket_bytes=64)
            for _ in range(2):
                with torch.no_grad():
                    trainer.log_std.add_(0.25)  # an "update"
                sync.sync()
            queue.put((0, sync.version, _plain(trainer.state_dict())))
        else:
            trainer, copy = TinyPolicy(), TinyPolicy().double()  # a rollout copy in another precision
            before = {k: v.clone() for k, v in trainer.state_dict().items()}
            sync = NodeWeightSync(trainer, None, copy, group, is_source=False, bucket_bytes=64)
            for version in (1, 2):
                sync.sync(version)
            assert all(torch.equal(before[k], v) for k, v in trainer.state_dict().items())  # trainer untouched
            queue.put((1, sync.version, _plain(copy.state_dict())))
    elif action == "silent":
        if rank == 0:
            start = time.monotonic()
            try:
                with comm_errors("waiting for a silent peer"):
                    recv_tensors(src=1)
            except Exception as err:  # noqa: BLE001 - the error is the result
                queue.put((type(err).__name__, str(err), time.monotonic() - start))
        else:
            time.sleep(5.0)  # alive but never sends
        return
    shutdown_distributed()


def _run_pair(action: str, results: int = 1) -> list:
    port = free_port()
    queue = mp.get_context("spawn").Queue()
    procs = [spawn_process(_peer, (rank, port, queue, action), name=f"peer{rank}") for rank in (0, 1)]
    try:
        return [queue.get(timeout=600) for _ in range(results)]  # generous: a loaded 2-core machine imports slowly
    finally:
        stop_processes(procs, timeout_s=10)


def test_tensors_travel_with_dtypes_and_shapes():
    [(tensors, extra)] = _run_pair("transfer")
    assert extra == {"env_steps": 11}
    assert tensors["images"] == ("torch.uint8", torch.arange(24).view(2, 3, 4).tolist())
    assert tensors["done"] == ("torch.bool", [True, False])
    assert tensors["x"][0] == "torch.float64" and len(tensors["x"][1]) == 5


def test_weights_reach_the_other_nodes_rollout_copy():
    results = dict((rank, (version, state)) for rank, version, state in _run_pair("weights", results=2))
    (v0, source), (v1, received) = results[0], results[1]
    assert v0 == v1 == 2
    for name, (_, value) in source.items():
        dtype, got = received[name]
        assert dtype == "torch.float64" and torch.allclose(torch.tensor(got).float(), torch.tensor(value)), name


def test_silent_peer_times_out_with_a_worker_error():
    [(kind, message, seconds)] = _run_pair("silent")
    assert kind == "WorkerError" and "collective_timeout_s" in message and "silent peer" in message
    assert seconds < 4.5  # the 2 s timeout, not the peer's 5 s of silence


def test_torchrun_command_and_srun_recipe():
    cluster = SimpleNamespace(num_nodes=2, hosts=["node-a", "node-b"], master_addr=None, master_port=29500,
                              collective_timeout_s=60.0)
    command = torchrun_command(cluster, 1, "cfg.yaml", ["runner.seed=1"])
    assert command[0] == "torchrun" and command[command.index("--node-rank") + 1] == "1"
    assert command[command.index("--master-addr") + 1] == "node-a"
    assert command[command.index("--nproc-per-node") + 1] == "1"
    assert command[-8:] == ["--max-restarts", "0", "-m", "rlvla_cli", "train", "--config", "cfg.yaml", "runner.seed=1"]
    recipe = srun_recipe(cluster, "cfg.yaml", [])
    assert "--node-rank $SLURM_NODEID" in recipe and "--ntasks-per-node 1" in recipe
    assert not all_local(cluster)
    assert all_local(SimpleNamespace(hosts=[], master_addr="127.0.0.1"))

"""All trainer ranks behind one handle: the driver is rank 0; ranks 1..N-1 are spawned followers.

Rank 0 broadcasts a command (``Train`` / ``Save`` / ``Load`` / ``Stop``, frozen dataclasses), sends each rank its
slice of the rollout batch as tensors (envs split along B; runtime/distributed/transfer.py) and gathers the
metrics (averaged over ranks). DeepSpeed all-reduces the gradients inside the step, so every rank's module holds
the same weights afterwards. On several nodes each node driver holds one rank and spawns its node's other ranks
(a :class:`RankPlan`); commands marked ``drivers_only`` (runtime/distributed/) are skipped by plain followers.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.errors import ConfigError, UserError, WorkerError
from rlvla_cli.rundir import checkpoint as ckpt
from rlvla_cli.runtime.distributed.transfer import (
    batch_from_tensors,
    batch_to_tensors,
    comm_errors,
    recv_tensors,
    send_tensors,
)
from rlvla_cli.runtime.launcher import (
    free_port,
    init_distributed,
    launched_externally,
    shutdown_distributed,
    spawn_process,
    stop_processes,
)
from rlvla_cli.runtime.signals import die_with_parent, ignore_interrupts
from rlvla_cli.runtime.trainer import Trainer

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig

PolicyFactory = Callable[[Any, str], torch.nn.Module]


@dataclass(frozen=True)
class Train:
    """One training step at ``global_step``; each rank then receives its shard of the batch (scatter)."""

    global_step: int


@dataclass(frozen=True)
class Save:
    """Write every rank's engine state and RNG into ``directory`` (a checkpoint staging directory)."""

    directory: str


@dataclass(frozen=True)
class Load:
    """Restore every rank from the checkpoint ``directory``."""

    directory: str


@dataclass(frozen=True)
class Stop:
    """Leave the command loop (then the process group is torn down)."""


Command = Train | Save | Load | Stop


@dataclass(frozen=True)
class RankPlan:
    """The trainer ranks one process holds (``rank``) and spawns (``spawn``: (rank, device) pairs) in a world of
    ``world`` ranks that meet at ``master_addr:master_port``. ``local_ranks``: rank -> index on its node."""

    rank: int
    world: int
    master_addr: str
    master_port: int
    spawn: tuple[tuple[int, str], ...] = ()
    local_ranks: dict[int, int] = field(default_factory=dict)
    local_world: int | None = None


def default_policy_factory(cfg: RootConfig, device: str) -> torch.nn.Module:
    """``build_policy(cfg.actor.model)`` on ``device`` (seeded by the caller so every rank starts equal)."""
    from rlvla_cli.models.registry import build_policy

    return build_policy(cfg.actor.model, device=device)


def split_batch(batch: RolloutBatch, parts: int) -> list[RolloutBatch]:
    """``batch.split(parts)`` (envs split along B), with the user-facing error when B does not divide."""
    if batch.num_envs % parts:
        raise ConfigError(
            f"the rollout has {batch.num_envs} envs, which do not split evenly over {parts} trainer ranks",
            key="env.train.total_num_envs", fix=f"use a multiple of {parts} envs (x rollout_epoch)",
        )
    return batch.split(parts)


def _mean_metrics(per_rank: list[dict[str, float]]) -> dict[str, float]:
    names = {k for m in per_rank for k in m}
    return {k: sum(m[k] for m in per_rank if k in m) / sum(1 for m in per_rank if k in m) for k in sorted(names)}


def _build_trainer(cfg: RootConfig, rank: int, world: int, device: str, total_optimizer_steps: int,
                   factory: PolicyFactory) -> Trainer:
    torch.manual_seed(cfg.runner.seed)  # identical initial weights on every rank
    policy = factory(cfg, device)
    trainer = Trainer(policy, cfg.actor, cfg.algorithm, world, device, total_optimizer_steps)
    torch.manual_seed(cfg.runner.seed + 1000 * rank)  # distinct streams afterwards (rank 0 samples rollouts)
    return trainer


def follower_main(cfg: RootConfig, rank: int, world: int, port: int | None, device: str, total_optimizer_steps: int,
                  factory: PolicyFactory = default_policy_factory, master_addr: str | None = None,
                  local: tuple[int, int] | None = None) -> None:
    """Entry point of trainer rank ``rank`` >= 1 (spawned by a driver, or started by DeepSpeed's launcher with
    ``port`` None): serve rank 0's commands until ``stop``. local: (index on the node, ranks on the node)."""
    ignore_interrupts()
    die_with_parent()
    torch.set_num_threads(1)
    try:
        local_rank, local_world = local or (None, None)
        init_distributed(rank, world, device, master_addr=master_addr, master_port=port,
                         timeout_s=cfg.cluster.collective_timeout_s, local_rank=local_rank, local_world=local_world)
        trainer = _build_trainer(cfg, rank, world, device, total_optimizer_steps, factory)
        serve_commands(trainer, rank)
    except Exception:  # noqa: BLE001 - report, then exit non-zero so rank 0 sees the peer go away
        traceback.print_exc()
        raise SystemExit(1) from None
    # an interpreter exit with a live gloo/NCCL group can abort in its C++ threads ("terminate called without an
    # active exception", seen under DeepSpeed's launcher), so the group is destroyed explicitly on every rank
    shutdown_distributed()


def receive_command() -> Any:
    """The next command broadcast by rank 0 (every rank of the world calls this)."""
    holder = [None]
    with comm_errors("waiting for the next command from trainer rank 0"):
        dist.broadcast_object_list(holder, src=0)
    return holder[0]


def serve_commands(trainer: Trainer, rank: int, extra: Callable[[Any], None] | None = None) -> None:
    """Serve rank 0's commands until ``Stop``. ``extra`` handles ``drivers_only`` commands (node drivers);
    without it they are skipped (plain followers take no part in them)."""
    while True:
        command = receive_command()
        if isinstance(command, Stop):
            dist.barrier()  # rank 0 waits here too: nobody tears the group down mid-message
            return
        if getattr(command, "drivers_only", False):
            if extra is not None:
                extra(command)
            continue
        _serve_command(trainer, command, rank)


def _serve_command(trainer: Trainer, command: Command, rank: int) -> None:
    if isinstance(command, Train):
        with comm_errors(f"trainer rank {rank} receiving its batch shard"):
            tensors, _ = recv_tensors(src=0)
        with comm_errors(f"trainer rank {rank}'s update (gradient all-reduce)", only_comm=True):
            metrics = trainer.train(batch_from_tensors(tensors), command.global_step)
        with comm_errors(f"trainer rank {rank} sending its metrics"):
            dist.gather_object(metrics, None, dst=0)
    elif isinstance(command, Save):
        with comm_errors(f"trainer rank {rank} saving the checkpoint", only_comm=True):
            trainer.save(Path(command.directory))
            ckpt.save_rng(Path(command.directory), f"rank_{rank}")
            dist.barrier()
    elif isinstance(command, Load):
        with comm_errors(f"trainer rank {rank} loading the checkpoint", only_comm=True):
            trainer.load(Path(command.directory))
            ckpt.load_rng(Path(command.directory), f"rank_{rank}")
            dist.barrier()
    else:
        raise ValueError(f"unknown trainer command {command!r}")


class TrainerGroup:
    """Rank 0 (in this process) plus ``len(devices) - 1`` follower processes; or, with ``plan`` (several nodes),
    trainer rank ``plan.rank`` here plus the followers ``plan.spawn``.

    devices: one device string per trainer rank (from the resolved placement's actor processes).
    """

    def __init__(self, cfg: RootConfig, devices: list[str], total_optimizer_steps: int,
                 factory: PolicyFactory = default_policy_factory, plan: RankPlan | None = None):
        self.world = len(devices)
        self.followers: list = []
        self.broken = False  # a transfer to a peer failed: no more collectives (close() must not wait on it)
        timeout = cfg.cluster.collective_timeout_s
        if plan is None:
            plan = self._single_node_plan(devices)
        self.rank = plan.rank
        local_world = plan.local_world
        for rank, device in plan.spawn:
            local = (plan.local_ranks.get(rank, rank), local_world or self.world)
            self.followers.append(spawn_process(
                follower_main, (cfg, rank, self.world, plan.master_port, device, total_optimizer_steps, factory,
                                plan.master_addr, local),
                name=f"rlvla-trainer-{rank}"))
        try:
            init_distributed(plan.rank, self.world, devices[plan.rank], master_addr=plan.master_addr,
                             master_port=plan.master_port, timeout_s=timeout,
                             local_rank=plan.local_ranks.get(plan.rank), local_world=local_world)
            self.trainer = _build_trainer(cfg, plan.rank, self.world, devices[plan.rank], total_optimizer_steps,
                                          factory)
        except BaseException:
            stop_processes(self.followers, timeout_s=2.0)
            raise
        self._closed = False

    def _single_node_plan(self, devices: list[str]) -> RankPlan:
        """Rank 0 here spawning 1..N-1 on a free port; under DeepSpeed's launcher (one node, every rank started
        by it) nothing is spawned and the launcher's rendezvous variables are used."""
        if launched_externally():
            if int(os.environ["WORLD_SIZE"]) != self.world:
                raise UserError(
                    f"the launcher started {os.environ['WORLD_SIZE']} ranks but the placement has {self.world} "
                    "actor processes", key="cluster.component_placement",
                    fix="launch one process per actor slot (deepspeed --num_gpus)",
                )
            return RankPlan(0, self.world, os.environ.get("MASTER_ADDR", "127.0.0.1"),
                            int(os.environ.get("MASTER_PORT", "29500")))
        return RankPlan(0, self.world, "127.0.0.1", free_port(), spawn=tuple((r, devices[r])
                                                                           for r in range(1, self.world)))

    @property
    def module(self) -> torch.nn.Module:
        return self.trainer.module

    def check_alive(self) -> None:
        """Raise WorkerError when a (spawned) follower rank died."""
        for rank, proc in enumerate(self.followers, start=1):
            if not proc.is_alive():
                raise WorkerError(f"trainer rank {rank} (pid {proc.pid}) died with exit code {proc.exitcode}")

    def command(self, command: Any) -> None:
        """Broadcast ``command`` to every rank of the world (rank 0 only; nothing to do with one rank)."""
        if self.world > 1:
            self.check_alive()
            if self.broken:
                raise WorkerError("a trainer rank or node driver stopped answering earlier; no more commands")
            with self.comm(f"sending {type(command).__name__} to the trainer ranks"):
                dist.broadcast_object_list([command], src=0)

    _command = command

    @contextlib.contextmanager
    def comm(self, what: str, only_comm: bool = False) -> Iterator[None]:
        """``comm_errors(what, only_comm)`` that also marks the group broken when the transfer fails."""
        try:
            with comm_errors(what, only_comm):
                yield
        except WorkerError:
            self.broken = True
            raise

    def _peers(self, what: str):
        """Around work that computes and talks to the other ranks: a failed collective becomes a WorkerError (and
        marks the group broken); compute errors (out of memory, a full disk) pass unchanged."""
        return self.comm(what, only_comm=True) if self.world > 1 else contextlib.nullcontext()

    def train(self, batch: RolloutBatch, global_step: int) -> dict[str, float]:
        """One training step over all ranks (shards sent as tensors); metrics averaged over ranks."""
        if self.world == 1:
            return self.trainer.train(batch, global_step)
        shards = split_batch(batch, self.world)
        self.command(Train(global_step))
        for rank in range(1, self.world):
            with self.comm(f"sending the batch shard of trainer rank {rank}"):
                send_tensors(batch_to_tensors(shards[rank]), dst=rank)
        with self._peers("the update of trainer rank 0 (gradient all-reduce)"):
            metrics = self.trainer.train(shards[0], global_step)
        gathered: list = [None] * self.world
        with self.comm("gathering the trainer ranks' metrics"):
            dist.gather_object(metrics, gathered, dst=0)
        return _mean_metrics(gathered)

    def save(self, staging: Path, rank0_rng: dict | None = None) -> None:
        """Every rank's engine state and RNG into ``staging`` (rank 0's RNG from ``rank0_rng`` when given: the
        snapshot taken at the end of the last finished step)."""
        self._command(Save(str(staging)))
        with self._peers("saving the checkpoint on trainer rank 0"):
            self.trainer.save(staging)
        (staging / "rng").mkdir(parents=True, exist_ok=True)
        if rank0_rng is None:
            ckpt.save_rng(staging, "rank_0")
        else:
            torch.save({"process": rank0_rng, "extra": {}}, staging / "rng" / "rank_0.pt")
        if self.world > 1:
            with self.comm("waiting for every rank's checkpoint"):
                dist.barrier()

    def load(self, checkpoint: Path) -> None:
        self._command(Load(str(checkpoint)))
        with self._peers("loading the checkpoint on trainer rank 0"):
            self.trainer.load(checkpoint)
        ckpt.load_rng(checkpoint, "rank_0")
        if self.world > 1:
            with self.comm("waiting for every rank to load the checkpoint"):
                dist.barrier()

    def close(self, timeout_s: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self.world > 1 and self.rank == 0 and not self.broken and all(p.is_alive() for p in self.followers):
            try:
                dist.broadcast_object_list([Stop()], src=0)
                dist.barrier()  # matches the followers' barrier before they destroy their group
            except Exception:  # noqa: BLE001 - a dead peer; the processes are stopped below
                pass
        stop_processes(self.followers, timeout_s=timeout_s)
        if not self.broken:  # destroying a group whose peer died can block in gloo; the process exits anyway
            shutdown_distributed()

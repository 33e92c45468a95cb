"""All trainer ranks behind one handle: the driver is rank 0; ranks 1..N-1 are spawned followers.

Rank 0 broadcasts a command (``Train`` / ``Save`` / ``Load`` / ``Stop``, frozen dataclasses), scatters each rank
its slice of the rollout batch (envs split along B), and gathers the metrics (averaged over ranks). DeepSpeed
all-reduces the gradients inside the step, so every rank's module holds the same weights afterwards.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.errors import ConfigError, UserError, WorkerError
from rlvla_cli.rundir import checkpoint as ckpt
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
                  factory: PolicyFactory = default_policy_factory) -> None:
    """Entry point of trainer rank ``rank`` >= 1 (spawned by rank 0, or started by DeepSpeed's launcher with
    ``port`` None): serve rank 0's commands until ``stop``."""
    ignore_interrupts()
    die_with_parent()
    torch.set_num_threads(1)
    try:
        init_distributed(rank, world, device, master_port=port)
        trainer = _build_trainer(cfg, rank, world, device, total_optimizer_steps, factory)
        while True:
            holder = [None]
            dist.broadcast_object_list(holder, src=0)
            command = holder[0]
            if isinstance(command, Stop):
                dist.barrier()  # rank 0 waits here too: nobody tears the group down mid-message
                break
            _serve_command(trainer, command, rank)
    except Exception:  # noqa: BLE001 - report, then exit non-zero so rank 0 sees the peer go away
        traceback.print_exc()
        raise SystemExit(1) from None
    # an interpreter exit with a live gloo/NCCL group can abort in its C++ threads ("terminate called without an
    # active exception", seen under DeepSpeed's launcher), so the group is destroyed explicitly on every rank
    shutdown_distributed()


def _serve_command(trainer: Trainer, command: Command, rank: int) -> None:
    if isinstance(command, Train):
        shard = [None]
        dist.scatter_object_list(shard, None, src=0)
        metrics = trainer.train(shard[0], command.global_step)
        dist.gather_object(metrics, None, dst=0)
    elif isinstance(command, Save):
        trainer.save(Path(command.directory))
        ckpt.save_rng(Path(command.directory), f"rank_{rank}")
        dist.barrier()
    elif isinstance(command, Load):
        trainer.load(Path(command.directory))
        ckpt.load_rng(Path(command.directory), f"rank_{rank}")
        dist.barrier()
    else:
        raise ValueError(f"unknown trainer command {command!r}")


class TrainerGroup:
    """Rank 0 (in this process) plus ``len(devices) - 1`` follower processes.

    devices: one device string per trainer rank (from the resolved placement's actor processes).
    """

    def __init__(self, cfg: RootConfig, devices: list[str], total_optimizer_steps: int,
                 factory: PolicyFactory = default_policy_factory):
        self.world = len(devices)
        self.followers: list = []
        external = launched_externally()  # the other ranks were started by DeepSpeed's launcher (multi-node)
        if external and int(os.environ["WORLD_SIZE"]) != self.world:
            raise UserError(
                f"the launcher started {os.environ['WORLD_SIZE']} ranks but the placement has {self.world} actor "
                "processes", key="cluster.component_placement",
                fix="launch one process per actor slot (deepspeed --num_gpus / hostfile slots)",
            )
        port = None if external else free_port()
        for rank in range(1, 1 if external else self.world):
            self.followers.append(spawn_process(
                follower_main, (cfg, rank, self.world, port, devices[rank], total_optimizer_steps, factory),
                name=f"rlvla-trainer-{rank}"))
        try:
            init_distributed(0, self.world, devices[0], master_port=port)
            self.trainer = _build_trainer(cfg, 0, self.world, devices[0], total_optimizer_steps, factory)
        except BaseException:
            stop_processes(self.followers, timeout_s=2.0)
            raise
        self._closed = False

    @property
    def module(self) -> torch.nn.Module:
        return self.trainer.module

    def check_alive(self) -> None:
        """Raise WorkerError when a (spawned) follower rank died."""
        for rank, proc in enumerate(self.followers, start=1):
            if not proc.is_alive():
                raise WorkerError(f"trainer rank {rank} (pid {proc.pid}) died with exit code {proc.exitcode}")

    def _command(self, command: Command) -> None:
        if self.world > 1:
            self.check_alive()
            dist.broadcast_object_list([command], src=0)

    def train(self, batch: RolloutBatch, global_step: int) -> dict[str, float]:
        """One training step over all ranks; metrics averaged over ranks."""
        if self.world == 1:
            return self.trainer.train(batch, global_step)
        self._command(Train(global_step))
        shard = [None]
        dist.scatter_object_list(shard, split_batch(batch, self.world), src=0)
        metrics = self.trainer.train(shard[0], global_step)
        gathered: list = [None] * self.world
        dist.gather_object(metrics, gathered, dst=0)
        return _mean_metrics(gathered)

    def save(self, staging: Path, rank0_rng: dict | None = None) -> None:
        """Every rank's engine state and RNG into ``staging`` (rank 0's RNG from ``rank0_rng`` when given: the
        snapshot taken at the end of the last finished step)."""
        self._command(Save(str(staging)))
        self.trainer.save(staging)
        (staging / "rng").mkdir(parents=True, exist_ok=True)
        if rank0_rng is None:
            ckpt.save_rng(staging, "rank_0")
        else:
            torch.save({"process": rank0_rng, "extra": {}}, staging / "rng" / "rank_0.pt")
        if self.world > 1:
            dist.barrier()

    def load(self, checkpoint: Path) -> None:
        self._command(Load(str(checkpoint)))
        self.trainer.load(checkpoint)
        ckpt.load_rng(checkpoint, "rank_0")
        if self.world > 1:
            dist.barrier()

    def close(self, timeout_s: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self.world > 1 and all(p.is_alive() for p in self.followers):
            try:
                dist.broadcast_object_list([Stop()], src=0)
                dist.barrier()  # matches the followers' barrier before they destroy their group
            except Exception:  # noqa: BLE001 - a dead peer; the processes are stopped below
                pass
        stop_processes(self.followers, timeout_s=timeout_s)
        shutdown_distributed()

"""Env worker processes and the client the runtime drives them with (:class:`EnvWorkerPool`).

Layout: ``num_workers`` spawned processes each own ``stages`` env groups (``pipeline_stage_num``) of
``n = total_num_envs / (num_workers * stages)`` envs. Stage ``s`` is the batch of all workers' group ``s``:
global env index of (stage s, worker w, local i) is ``s * W * n + w * n + i``, so a stage batch is a
contiguous slice of the global envs and GRPO groups (``group_size`` consecutive envs) never straddle workers.

Usage (the runtime's loop; group s steps while the policy infers for group s + 1)::

    with EnvWorkerPool(env_cfg, num_workers=2, stages=2, max_chunk=8) as pool:
        obs = pool.reset()                      # list: one obs dict per stage
        for s in range(pool.stages):
            pool.send_actions(s, policy(obs[s]))  # [pool.envs_per_stage, C, A]; returns at once
        result = pool.recv(0)                   # ChunkStepResult of stage 0 (blocks until ready)

Data travels through one shared-memory block per (worker, stage), allocated once from the env's ObsSpec;
pipes carry only small commands. A worker that dies or raises is reported as ``WorkerDied`` within
``poll_interval_s`` (never a hang); ``close()`` stops the processes and unlinks every segment. A user mistake
inside a worker (e.g. an unregistered ManiSkill id) is re-raised in the runtime as the same ``UserError`` class.

Fault tolerance (issue 19): a worker that dies (killed, crashed, or raised and exited) surfaces as
``WorkerDied``; a watchdog thread (watchdog.py) notices a death within ``watch_interval_s`` even while the runtime
is busy elsewhere and reports it through ``on_death``. ``restart_dead()`` replaces the dead workers by fresh
processes over the same env groups and shared-memory blocks (a fresh seed stream each time), drops the replies
still in flight from the others, and leaves the pool ready for a ``reset()``: the caller re-collects what the
interrupted rollout had gathered.

The worker side is worker.py, the messages messages.py; :class:`EnvPool` is the interface the rollout and
evaluation code program against.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any, Protocol

import torch

from rlvla_cli import errors
from rlvla_cli.envs.base import ChunkStepResult, Obs, ObsSpec
from rlvla_cli.envs.episode import EPISODE_METRICS
from rlvla_cli.envs.workers.channels import ShmTensorBlock, cat_obs, read_obs, step_layout
from rlvla_cli.envs.workers.messages import Attach, Close, Done, Failed, FromWorker, Reset, Spec, Step, ToWorker
from rlvla_cli.envs.workers.watchdog import DeathCallback, Watchdog, exit_reason, reap
from rlvla_cli.envs.workers.worker import env_worker_main
from rlvla_cli.errors import UserError, WorkerDied, WorkerError

RESTART_SEED_STRIDE = 1_000_003  # a restarted worker's seed: seed + restarts * stride (a fresh stream)


class EnvPool(Protocol):
    """What the rollout and evaluation code drive: ``stages`` env groups of ``envs_per_stage`` envs each
    (``num_envs`` in all, stage-major global order), stepped a chunk at a time."""

    stages: int
    envs_per_stage: int
    num_envs: int
    obs_spec: ObsSpec
    action_dim: int

    def reset(self, seed: int | None = None, reset_state_ids: torch.Tensor | None = None) -> list[Obs]: ...

    def send_actions(self, stage: int, actions: torch.Tensor) -> None: ...

    def recv(self, stage: int) -> ChunkStepResult: ...

    def step(self, stage: int, actions: torch.Tensor) -> ChunkStepResult: ...

    def worker_pids(self) -> list[int]: ...

    def close(self, timeout_s: float = 10.0) -> None: ...


class EnvWorkerPool:
    """Runtime-side handle of ``num_workers`` env worker processes with ``stages`` env groups each.

    env_cfg: an ``EnvConfig`` (``total_num_envs`` must divide by ``num_workers * stages * group_size``).
    max_chunk: the largest action chunk that will be sent (sizes the action buffer).
    seed: overrides ``env_cfg.seed``. video_dir: where workers write videos when ``video_cfg.save_video``.
    workers: ``(first, total)``: this pool runs global workers ``first .. first + num_workers - 1`` of a layout of
    ``total`` workers (one node's share in a multi-node run: same envs as those workers of a single pool).
    poll_interval_s: how often liveness is checked while waiting; timeout_s: the longest wait for one reply.
    watch_interval_s: the watchdog's period (a death is reported within it); on_death(worker, pid, reason): called
    from the watchdog thread when it sees a worker die.
    """

    def __init__(self, env_cfg, num_workers: int = 1, stages: int = 1, seed: int | None = None, *,
                 max_chunk: int = 8, video_dir: str | None = None, start_timeout_s: float = 600.0,
                 timeout_s: float = 600.0, poll_interval_s: float = 0.2,
                 watch_interval_s: float = 0.5, on_death: DeathCallback | None = None,
                 workers: tuple[int, int] | None = None):
        total = env_cfg.total_num_envs
        self.first_worker, all_workers = workers or (0, num_workers)
        if total % (all_workers * stages * env_cfg.group_size):
            raise ValueError(f"total_num_envs={total} must be a multiple of num_workers*stages*group_size = "
                             f"{all_workers}*{stages}*{env_cfg.group_size}")
        self.env_cfg, self.num_workers, self.stages, self.all_workers = env_cfg, num_workers, stages, all_workers
        self.per_group = total // (all_workers * stages)
        self.envs_per_stage = self.per_group * num_workers
        self.num_envs = self.envs_per_stage * stages
        self.max_chunk, self.timeout_s, self.poll_interval_s = max_chunk, timeout_s, poll_interval_s
        self._blocks: list[list[ShmTensorBlock]] = []
        self._procs, self._conns = [], []
        self._pending: list[dict[int, Done]] = [{} for _ in range(num_workers)]
        self._in_flight = [False] * stages
        self._outstanding = [0] * num_workers  # Reset / Step sent whose Done has not been read from the pipe
        self._failed: set[int] = set()  # workers that reported Failed (they exit right after)
        self._closed = False
        self.seed, self.video_dir, self.start_timeout_s = seed, video_dir, start_timeout_s
        self.restarts = 0
        self._watchdog: Watchdog | None = None
        try:
            self._start()
            self._watchdog = Watchdog(lambda: self._procs, watch_interval_s, on_death)
        except BaseException:
            self.close()
            raise

    def _spawn(self, w: int, seed: int | None):
        """Start worker ``w``'s process; returns (process, driver end of its pipe)."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        index = self.first_worker + w
        proc = ctx.Process(target=env_worker_main, name=f"rlvla-env-{index}", daemon=True,
                           args=(child, self.env_cfg, index, self.all_workers, self.stages, seed, self.video_dir))
        proc.start()
        child.close()
        return proc, parent

    def _start(self) -> None:
        for w in range(self.num_workers):
            proc, conn = self._spawn(w, self.seed)
            self._procs.append(proc)
            self._conns.append(conn)
        for w in range(self.num_workers):
            spec = self._wait(w, expect=Spec, timeout=self.start_timeout_s)
            self.obs_spec, self.action_dim = spec.obs_spec, spec.action_dim
            self._layout = step_layout(self.obs_spec, self.per_group, self.max_chunk, self.action_dim)
            blocks = [ShmTensorBlock(self._layout) for _ in range(self.stages)]
            self._blocks.append(blocks)
            self._send(w, Attach(tuple((b.name, self._layout) for b in blocks)))

    # ---------------------------------------------------------------------------------- restarts
    def dead_workers(self) -> list[int]:
        """Indices of workers whose process has exited or that reported a failure."""
        return [w for w, proc in enumerate(self._procs) if w in self._failed or not proc.is_alive()]

    def restart_dead(self) -> list[int]:
        """Replace every dead worker by a fresh process over the same env groups and shared-memory blocks.

        Live workers' replies still in flight are read and dropped (a worker dying meanwhile is restarted too),
        so every stage is idle afterwards and the next call must be ``reset()``. The new process builds its envs
        with a fresh seed (``seed + restarts * RESTART_SEED_STRIDE``): the dead one's generator state is lost, and
        replaying the first one's stream would repeat its episodes. Returns the restarted workers' indices.
        """
        self._check_open()
        dead = set(self.dead_workers())
        for w in range(self.num_workers):
            if w not in dead and not self._drain(w):
                dead.add(w)
        for w in sorted(dead):
            self._respawn(w)
        self._pending = [{} for _ in range(self.num_workers)]
        self._in_flight = [False] * self.stages
        return sorted(dead)

    def _drain(self, w: int) -> bool:
        """Read and drop worker ``w``'s outstanding replies; False when it died or failed meanwhile."""
        conn, deadline = self._conns[w], time.monotonic() + self.timeout_s
        while self._outstanding[w] > 0:
            if time.monotonic() > deadline or not self._procs[w].is_alive():
                return False
            try:
                if conn.poll(self.poll_interval_s):
                    message = conn.recv()
                    if isinstance(message, Failed):
                        return False
                    self._outstanding[w] -= 1
            except (EOFError, OSError):
                return False
        return True

    def _respawn(self, w: int) -> None:
        old = self._procs[w]
        old.join(timeout=1.0)
        if old.is_alive():  # reported Failed but hangs on the way out, or stopped answering
            old.kill()
            old.join(timeout=2.0)
        self._conns[w].close()
        self.restarts += 1
        base = self.env_cfg.seed if self.seed is None else self.seed
        seed = None if base is None else base + self.restarts * RESTART_SEED_STRIDE
        self._procs[w], self._conns[w] = self._spawn(w, seed)
        self._outstanding[w] = 0
        self._failed.discard(w)
        if self._watchdog is not None:
            self._watchdog.forget(w)
        self._wait(w, expect=Spec, timeout=self.start_timeout_s)
        self._send(w, Attach(tuple((b.name, self._layout) for b in self._blocks[w])))

    # ---------------------------------------------------------------------------------- waiting
    def _wait(self, worker: int, expect: type, timeout: float | None = None, stage: int | None = None) -> FromWorker:
        """Next reply of ``worker`` of type ``expect`` (for ``stage`` when given), checking liveness every poll
        interval; a ``Failed`` reply is raised (a user mistake stays a user error: exit code 2, no traceback)."""
        if stage is not None and stage in self._pending[worker]:
            return self._pending[worker].pop(stage)
        conn, proc = self._conns[worker], self._procs[worker]
        deadline = time.monotonic() + (self.timeout_s if timeout is None else timeout)
        while True:
            if conn.poll(self.poll_interval_s):
                try:
                    message = conn.recv()
                except (EOFError, OSError) as err:
                    raise self._dead(worker, proc) from err
                if isinstance(message, Failed):
                    self._failed.add(worker)
                    if message.user_error is not None:
                        raise getattr(errors, message.user_error, UserError)(message.message)
                    raise WorkerDied(worker, proc.pid, None, f"failed: {message.summary}", message.traceback)
                if isinstance(message, Done):
                    self._outstanding[worker] -= 1
                if not isinstance(message, expect):
                    raise WorkerError(f"env worker {worker}: expected {expect.__name__}, got {message!r}")
                if stage is None or message.stage == stage:
                    return message
                self._pending[worker][message.stage] = message
            elif not proc.is_alive():
                raise self._dead(worker, proc)
            if time.monotonic() > deadline:
                raise WorkerError(f"env worker {worker} did not answer within {self.timeout_s:.0f} s")

    @staticmethod
    def _dead(worker: int, proc) -> WorkerDied:
        code = reap(proc)
        return WorkerDied(worker, proc.pid, code, f"died ({exit_reason(code)})")

    def _send(self, worker: int, message: ToWorker) -> None:
        """Send a control message; a worker that died meanwhile surfaces as WorkerDied, not a broken pipe."""
        try:
            self._conns[worker].send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError) as err:
            raise self._dead(worker, self._procs[worker]) from err
        if isinstance(message, (Reset, Step)):
            self._outstanding[worker] += 1

    def _check_open(self) -> None:
        if self._closed:
            raise WorkerError("the env worker pool is closed")

    # ---------------------------------------------------------------------------------- API
    def reset(self, seed: int | None = None, reset_state_ids: torch.Tensor | None = None) -> list[Obs]:
        """Reset every stage; returns one obs dict per stage. ``reset_state_ids`` int64 ``[num_envs]`` in
        global env order (stage-major) fixes the initial states."""
        self._check_open()
        if any(self._in_flight):
            raise WorkerError("reset() while a chunk is in flight: recv() every stage first")
        for s in range(self.stages):
            for w in range(self.num_workers):
                explicit = reset_state_ids is not None
                if explicit:
                    start = s * self.envs_per_stage + w * self.per_group
                    self._blocks[w][s]["reset_state_ids"].copy_(
                        torch.as_tensor(reset_state_ids, dtype=torch.int64)[start : start + self.per_group])
                self._send(w, Reset(s, seed, explicit))
        for s in range(self.stages):
            for w in range(self.num_workers):
                self._wait(w, expect=Done, stage=s)
        return [cat_obs([read_obs(self._blocks[w][s], "obs") for w in range(self.num_workers)])
                for s in range(self.stages)]

    def send_actions(self, stage: int, actions: torch.Tensor) -> None:
        """Start one chunk on ``stage``: ``actions`` float32 ``[envs_per_stage, C, A]`` (C <= max_chunk)."""
        self._check_open()
        if self._in_flight[stage]:
            raise WorkerError(f"stage {stage} already has a chunk in flight: call recv({stage}) first")
        actions = torch.as_tensor(actions, dtype=torch.float32)
        if actions.dim() != 3 or actions.shape[0] != self.envs_per_stage or actions.shape[1] > self.max_chunk:
            raise ValueError(f"actions must be [{self.envs_per_stage}, C<={self.max_chunk}, A]; "
                             f"got {tuple(actions.shape)}")
        chunk, width = actions.shape[1], min(actions.shape[2], self.action_dim)
        for w in range(self.num_workers):
            rows = actions[w * self.per_group : (w + 1) * self.per_group]
            buffer = self._blocks[w][stage]["actions"]
            buffer[:, :chunk].zero_()
            buffer[:, :chunk, :width] = rows[..., :width]
            self._send(w, Step(stage, chunk))
        self._in_flight[stage] = True
        self._chunk = getattr(self, "_chunk", {})
        self._chunk[stage] = chunk

    def recv(self, stage: int) -> ChunkStepResult:
        """Wait for ``stage``'s chunk and return it (tensors copied out of shared memory)."""
        self._check_open()
        if not self._in_flight[stage]:
            raise WorkerError(f"recv({stage}) without a chunk in flight: call send_actions({stage}, ...) first")
        has_final = [self._wait(w, expect=Done, stage=stage).has_final for w in range(self.num_workers)]
        self._in_flight[stage] = False
        return self._gather(stage, self._chunk[stage], any(has_final))

    def step(self, stage: int, actions: torch.Tensor) -> ChunkStepResult:
        """``send_actions`` then ``recv`` (no overlap)."""
        self.send_actions(stage, actions)
        return self.recv(stage)

    def _gather(self, stage: int, chunk: int, has_final: bool) -> ChunkStepResult:
        blocks = [self._blocks[w][stage] for w in range(self.num_workers)]
        single = len(blocks) == 1  # several workers: torch.cat already copies out of shared memory, once

        def cat(key: str, columns: bool = True) -> torch.Tensor:
            parts = [b[key][:, :chunk] if columns else b[key] for b in blocks]
            return parts[0].clone() if single else torch.cat(parts, dim=0)

        infos: dict[str, Any] = {"success": cat("success"), "final_mask": cat("final_mask", False),
                                 "reset_state_ids": cat("state_ids", False)}
        if has_final:
            # only the rows whose episode ended were written (the others are not valid: the contract of
            # final_observation); they are copied into zero-filled batches
            infos["final_observation"] = cat_obs([
                read_obs(b, "final", rows=torch.nonzero(b["final_mask"]).flatten()) for b in blocks])
            metrics = torch.cat([b["episode"] for b in blocks], dim=1)
            infos["episode"] = {key: metrics[row].clone() for row, key in enumerate(EPISODE_METRICS)}
        obs = cat_obs([read_obs(b, "obs", copy=single) for b in blocks])
        return ChunkStepResult(obs=obs, rewards=cat("rewards"), terminations=cat("terminations"),
                               truncations=cat("truncations"), infos=infos)

    def worker_pids(self) -> list[int]:
        """Process ids of the workers (for monitoring)."""
        return [p.pid for p in self._procs]

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop every worker (politely, then terminate, then kill) and unlink every segment. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_watchdog", None) is not None:
            self._watchdog.stop()
        for conn in self._conns:
            try:
                conn.send(Close())
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + timeout_s
        for proc in self._procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2.0)
            if proc.is_alive():
                os.kill(proc.pid, 9)
                proc.join(timeout=2.0)
        for conn in self._conns:
            conn.close()
        for blocks in self._blocks:
            for block in blocks:
                block.close()
        self._blocks = []

    def __enter__(self) -> EnvWorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close(timeout_s=2.0)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

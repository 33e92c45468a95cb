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
pipes carry only small commands. A worker that dies or raises is reported as ``WorkerError`` within
``poll_interval_s`` (never a hang); ``close()`` stops the processes and unlinks every segment. A user mistake
inside a worker (e.g. an unregistered ManiSkill id) is re-raised in the runtime as the same ``UserError`` class.

``make_env_pool(env_cfg, num_workers=0, ...)`` returns an :class:`InlineEnvPool` with the same API that keeps the
envs in the calling process (best for the built-in task, whose stepping is cheaper than any hand-off).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from typing import Any

import torch

from rlvla_cli import errors
from rlvla_cli.envs.base import ChunkStepResult, Obs, ObsSpec
from rlvla_cli.envs.episode import EPISODE_METRICS
from rlvla_cli.envs.workers.channels import ShmTensorBlock, cat_obs, read_obs, step_layout, write_obs
from rlvla_cli.errors import UserError, WorkerError


# ------------------------------------------------------------------------------------------ worker side
def _write_result(block: ShmTensorBlock, result: ChunkStepResult, state_ids: torch.Tensor) -> bool:
    chunk = result.rewards.shape[1]
    write_obs(block, "obs", result.obs)
    block["rewards"][:, :chunk] = result.rewards
    block["terminations"][:, :chunk] = result.terminations
    block["truncations"][:, :chunk] = result.truncations
    block["success"][:, :chunk] = result.infos["success"]
    block["final_mask"].copy_(result.infos["final_mask"])
    block["state_ids"].copy_(state_ids)
    ended = torch.nonzero(result.infos["final_mask"]).flatten()
    has_final = len(ended) > 0
    if has_final:
        write_obs(block, "final", result.infos["final_observation"], rows=ended)
        episode = result.infos["episode"]
        for row, key in enumerate(EPISODE_METRICS):
            block["episode"][row].copy_(episode[key])
    return has_final


def _serve(conn, envs: list, blocks: list[ShmTensorBlock]) -> None:
    """Command loop: ``("reset", stage, seed, explicit_ids)``, ``("step", stage, chunk)``, ``("close",)``."""
    while True:
        message = conn.recv()
        command = message[0]
        if command == "close":
            return
        stage = message[1]
        env, block = envs[stage], blocks[stage]
        if command == "reset":
            ids = block["reset_state_ids"].clone() if message[3] else None
            obs, _ = env.reset(seed=message[2], reset_state_ids=ids)
            write_obs(block, "obs", obs)
            block["state_ids"].copy_(env.state_ids)
            conn.send(("done", stage, False))
        elif command == "step":
            result = env.chunk_step(block["actions"][:, : message[2]].clone())
            conn.send(("done", stage, _write_result(block, result, env.state_ids)))
        else:
            raise ValueError(f"unknown command {command!r}")


def env_worker_main(conn, env_cfg, worker_index: int, num_workers: int, stages: int, seed: int | None,
                    video_dir: str | None) -> None:
    """Entry point of a spawned env worker: build the env groups, hand over specs, attach, serve.

    Ctrl-C reaches the whole process group; workers ignore it so the runtime can checkpoint and then stop
    them with ``close()``. A vanished runtime (pipe closed) ends the worker too, so none is orphaned.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    envs, blocks = [], []
    try:
        from rlvla_cli.envs.registry import build_env

        per_group = env_cfg.total_num_envs // (num_workers * stages)
        for stage in range(stages):
            offset = stage * num_workers * per_group + worker_index * per_group
            envs.append(build_env(env_cfg, per_group, seed, env_offset=offset, video_dir=video_dir,
                                  video_tag=f"w{worker_index}_s{stage}"))
        spec = envs[0].obs_spec
        conn.send(("spec", (spec.image_shape, spec.state_dim, spec.has_wrist, spec.max_instruction_chars),
                   envs[0].action_dim))
        message = conn.recv()
        if message[0] == "close":
            return
        blocks = [ShmTensorBlock(layout, name=name, create=False) for name, layout in message[1]]
        _serve(conn, envs, blocks)
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    except BaseException as err:  # noqa: BLE001 - every failure is reported to the runtime
        try:
            kind = type(err).__name__ if isinstance(err, UserError) else None
            conn.send(("error", f"{type(err).__name__}: {err}", traceback.format_exc(), kind, str(err)))
        except (BrokenPipeError, OSError):
            pass
    finally:
        for block in blocks:
            block.close()
        for env in envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort at shutdown
                pass


# ------------------------------------------------------------------------------------------ client side
class EnvWorkerPool:
    """Runtime-side handle of ``num_workers`` env worker processes with ``stages`` env groups each.

    env_cfg: an ``EnvConfig`` (``total_num_envs`` must divide by ``num_workers * stages * group_size``).
    max_chunk: the largest action chunk that will be sent (sizes the action buffer).
    seed: overrides ``env_cfg.seed``. video_dir: where workers write videos when ``video_cfg.save_video``.
    poll_interval_s: how often liveness is checked while waiting; timeout_s: the longest wait for one reply.
    """

    def __init__(self, env_cfg, num_workers: int = 1, stages: int = 1, seed: int | None = None, *,
                 max_chunk: int = 8, video_dir: str | None = None, start_timeout_s: float = 600.0,
                 timeout_s: float = 600.0, poll_interval_s: float = 0.2):
        total = env_cfg.total_num_envs
        if total % (num_workers * stages * env_cfg.group_size):
            raise ValueError(f"total_num_envs={total} must be a multiple of num_workers*stages*group_size = "
                             f"{num_workers}*{stages}*{env_cfg.group_size}")
        self.env_cfg, self.num_workers, self.stages = env_cfg, num_workers, stages
        self.per_group = total // (num_workers * stages)
        self.envs_per_stage = self.per_group * num_workers
        self.num_envs = total
        self.max_chunk, self.timeout_s, self.poll_interval_s = max_chunk, timeout_s, poll_interval_s
        self._blocks: list[list[ShmTensorBlock]] = []
        self._procs, self._conns = [], []
        self._pending: list[dict[int, tuple]] = [{} for _ in range(num_workers)]
        self._in_flight = [False] * stages
        self._closed = False
        try:
            self._start(seed, video_dir, start_timeout_s)
        except BaseException:
            self.close()
            raise

    def _start(self, seed, video_dir, start_timeout_s) -> None:
        ctx = mp.get_context("spawn")
        for w in range(self.num_workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=env_worker_main, name=f"rlvla-env-{w}", daemon=True,
                               args=(child, self.env_cfg, w, self.num_workers, self.stages, seed, video_dir))
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
        for w in range(self.num_workers):
            _, spec_tuple, action_dim = self._wait(w, expect="spec", timeout=start_timeout_s)
            image_shape, state_dim, has_wrist, max_chars = spec_tuple
            self.obs_spec = ObsSpec(tuple(image_shape), state_dim, has_wrist, max_chars)
            self.action_dim = action_dim
            layout = step_layout(self.obs_spec, self.per_group, self.max_chunk, action_dim)
            blocks = [ShmTensorBlock(layout) for _ in range(self.stages)]
            self._blocks.append(blocks)
            self._send(w, ("attach", [(b.name, layout) for b in blocks]))

    # ---------------------------------------------------------------------------------- waiting
    def _wait(self, worker: int, expect: str, timeout: float | None = None, stage: int | None = None) -> tuple:
        """Next reply of ``worker`` (for ``stage`` when given), checking liveness every poll interval."""
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
                if message[0] == "error":
                    if message[3] is not None:  # a user mistake stays a user error (exit code 2, no traceback)
                        raise getattr(errors, message[3], UserError)(message[4])
                    raise WorkerError(f"env worker {worker} failed: {message[1]}\n{message[2]}")
                if message[0] != expect:
                    raise WorkerError(f"env worker {worker}: expected {expect!r}, got {message[0]!r}")
                if stage is None or message[1] == stage:
                    return message
                self._pending[worker][message[1]] = message
            elif not proc.is_alive():
                raise self._dead(worker, proc)
            if time.monotonic() > deadline:
                raise WorkerError(f"env worker {worker} did not answer within {self.timeout_s:.0f} s")

    @staticmethod
    def _dead(worker: int, proc) -> WorkerError:
        proc.join(timeout=1.0)
        return WorkerError(f"env worker {worker} (pid {proc.pid}) died with exit code {proc.exitcode}")

    def _send(self, worker: int, message: tuple) -> None:
        """Send a control message; a worker that died meanwhile surfaces as WorkerError, not a broken pipe."""
        try:
            self._conns[worker].send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError) as err:
            raise self._dead(worker, self._procs[worker]) from err

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
                self._send(w, ("reset", s, seed, explicit))
        for s in range(self.stages):
            for w in range(self.num_workers):
                self._wait(w, expect="done", stage=s)
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
            self._send(w, ("step", stage, chunk))
        self._in_flight[stage] = True
        self._chunk = getattr(self, "_chunk", {})
        self._chunk[stage] = chunk

    def recv(self, stage: int) -> ChunkStepResult:
        """Wait for ``stage``'s chunk and return it (tensors copied out of shared memory)."""
        self._check_open()
        if not self._in_flight[stage]:
            raise WorkerError(f"recv({stage}) without a chunk in flight: call send_actions({stage}, ...) first")
        has_final = [self._wait(w, expect="done", stage=stage)[2] for w in range(self.num_workers)]
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
        for conn in self._conns:
            try:
                conn.send(("close",))
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


class InlineEnvPool:
    """The :class:`EnvWorkerPool` API with the env groups in this process (``num_workers=0``): no processes,
    no shared memory, no copies. For envs so cheap that inter-process hand-offs would cost more than stepping
    (the built-in task steps ~100k env steps/s on one core). ``send_actions`` steps at once; ``recv`` returns.
    """

    num_workers = 0

    def __init__(self, env_cfg, stages: int = 1, seed: int | None = None, *, max_chunk: int = 8,
                 video_dir: str | None = None):
        from rlvla_cli.envs.registry import build_env

        total = env_cfg.total_num_envs
        if total % (stages * env_cfg.group_size):
            raise ValueError(f"total_num_envs={total} must be a multiple of stages*group_size = "
                             f"{stages}*{env_cfg.group_size}")
        self.env_cfg, self.stages, self.max_chunk = env_cfg, stages, max_chunk
        self.per_group = self.envs_per_stage = total // stages
        self.num_envs = total
        self.envs = [build_env(env_cfg, self.per_group, seed, env_offset=s * self.per_group, video_dir=video_dir,
                               video_tag=f"inline_s{s}") for s in range(stages)]
        self.obs_spec, self.action_dim = self.envs[0].obs_spec, self.envs[0].action_dim
        self._results: list[ChunkStepResult | None] = [None] * stages
        self._closed = False

    def reset(self, seed: int | None = None, reset_state_ids: torch.Tensor | None = None) -> list[Obs]:
        if self._closed:
            raise WorkerError("the env pool is closed")
        self._results = [None] * self.stages
        out = []
        for s, env in enumerate(self.envs):
            ids = None
            if reset_state_ids is not None:
                ids = torch.as_tensor(reset_state_ids)[s * self.per_group : (s + 1) * self.per_group]
            out.append(env.reset(seed=seed, reset_state_ids=ids)[0])
        return out

    def send_actions(self, stage: int, actions: torch.Tensor) -> None:
        if self._closed:
            raise WorkerError("the env pool is closed")
        if self._results[stage] is not None:
            raise WorkerError(f"stage {stage} already has a chunk in flight: call recv({stage}) first")
        actions = torch.as_tensor(actions, dtype=torch.float32)
        if actions.dim() != 3 or actions.shape[0] != self.envs_per_stage or actions.shape[1] > self.max_chunk:
            raise ValueError(f"actions must be [{self.envs_per_stage}, C<={self.max_chunk}, A]; "
                             f"got {tuple(actions.shape)}")
        result = self.envs[stage].chunk_step(actions[..., : self.action_dim])
        result.infos["reset_state_ids"] = self.envs[stage].state_ids.clone()
        self._results[stage] = result

    def recv(self, stage: int) -> ChunkStepResult:
        result = self._results[stage]
        if result is None:
            raise WorkerError(f"recv({stage}) without a chunk in flight: call send_actions({stage}, ...) first")
        self._results[stage] = None
        return result

    def step(self, stage: int, actions: torch.Tensor) -> ChunkStepResult:
        self.send_actions(stage, actions)
        return self.recv(stage)

    def worker_pids(self) -> list[int]:
        return []

    def close(self, timeout_s: float = 10.0) -> None:
        if not self._closed:
            self._closed = True
            for env in self.envs:
                env.close()

    def __enter__(self) -> InlineEnvPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_env_pool(env_cfg, num_workers: int = 1, stages: int = 1, seed: int | None = None, **kwargs):
    """``InlineEnvPool`` when ``num_workers == 0`` (envs in this process), else ``EnvWorkerPool``; same API."""
    if num_workers == 0:
        inline_keys = {"max_chunk", "video_dir"}
        return InlineEnvPool(env_cfg, stages, seed, **{k: v for k, v in kwargs.items() if k in inline_keys})
    return EnvWorkerPool(env_cfg, num_workers, stages, seed, **kwargs)

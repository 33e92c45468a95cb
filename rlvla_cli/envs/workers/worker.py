"""The env worker process: builds its env groups, serves ``Reset`` / ``Step`` through shared memory.

Spawned by ``pool.EnvWorkerPool``; the protocol is messages.py. Stage ``s`` of worker ``w`` holds the envs
``s * W * n + w * n + i`` (``n`` per group) of the global order.
"""

from __future__ import annotations

import signal
import traceback

import torch

from rlvla_cli.envs.base import ChunkStepResult
from rlvla_cli.envs.episode import EPISODE_METRICS
from rlvla_cli.envs.workers.channels import ShmTensorBlock, write_obs
from rlvla_cli.envs.workers.messages import Close, Done, Failed, Reset, Spec, Step
from rlvla_cli.errors import UserError


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
    """Command loop over ``Reset`` / ``Step`` until ``Close`` (messages.py)."""
    while True:
        message = conn.recv()
        if isinstance(message, Close):
            return
        env, block = envs[message.stage], blocks[message.stage]
        if isinstance(message, Reset):
            ids = block["reset_state_ids"].clone() if message.explicit_ids else None
            obs, _ = env.reset(seed=message.seed, reset_state_ids=ids)
            write_obs(block, "obs", obs)
            block["state_ids"].copy_(env.state_ids)
            conn.send(Done(message.stage))
        elif isinstance(message, Step):
            result = env.chunk_step(block["actions"][:, : message.chunk].clone())
            conn.send(Done(message.stage, _write_result(block, result, env.state_ids)))
        else:
            raise ValueError(f"unknown message {message!r}")


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
        conn.send(Spec(envs[0].obs_spec, envs[0].action_dim))
        message = conn.recv()
        if isinstance(message, Close):
            return
        blocks = [ShmTensorBlock(layout, name=name, create=False) for name, layout in message.blocks]
        _serve(conn, envs, blocks)
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    except BaseException as err:  # noqa: BLE001 - every failure is reported to the runtime
        try:
            kind = type(err).__name__ if isinstance(err, UserError) else None
            conn.send(Failed(f"{type(err).__name__}: {err}", traceback.format_exc(), kind, str(err)))
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

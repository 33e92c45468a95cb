"""Rollout throughput with the policy in the loop vs env-only stepping, through the same env workers.

    python scripts/bench_rollout.py --out bench_rollout.json                  # 16 processes, OFT 7B bf16 on the GPU
    python scripts/bench_rollout.py --processes 2 --size tiny --device cpu --out bench_rollout_cpu.json
    python scripts/bench_rollout.py --env builtin --processes 1 --size tiny --steps 2 --repeats 1   # smoke run

For each model x ``pipeline_stage_num`` one ``EnvWorkerPool`` (``--processes`` workers, each holding ``stages``
env groups) is started and, alternately, timed in two ways:

- env-only: reset + T chunk steps with random actions, every stage kept in flight (what the runtime's schedule
  gives when inference costs nothing);
- rollout: ``RolloutWorker.collect`` (the runtime's own loop: reset, ``policy.predict`` per stage, the next
  chunk sent at once so stage s steps while the policy infers for stage s + 1, values for PPO, batch assembly).

Each way's best of ``--repeats`` is kept (on a shared machine the least disturbed run); ratio = rollout / env-only
env steps/s (target >= 0.85 with 2 stages). Per rollout the time is split into predict (synchronised),
waiting in ``pool.recv`` and the rest of the loop, which is what tells why a ratio is low.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_models, next to this file

from bench_models import build as build_vla  # noqa: E402
from bench_models import int_list, model_list  # noqa: E402

from rlvla_cli.errors import UserError  # noqa: E402

TARGET_RATIO = 0.85
MODELS = ("small", "openvla_oft")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--env", default="maniskill", choices=["maniskill", "builtin"],
                        help="maniskill: PickCube-v1 rgb, CPU physics (configs/env/maniskill_pick_cube.yaml); "
                             "builtin: the embedded task (fast smoke run).")
    parser.add_argument("--image-size", type=int, default=128, help="Camera width and height.")
    parser.add_argument("--processes", type=int, default=16, help="Env worker processes.")
    parser.add_argument("--envs-per-process", type=int, default=2,
                        help="Envs per worker (split over the stages: must divide by every --stages value).")
    parser.add_argument("--steps", type=int, default=10, help="Chunk steps T per rollout epoch.")
    parser.add_argument("--models", default="small,openvla_oft", help=f"Comma list of {list(MODELS)}.")
    parser.add_argument("--size", default="full" if cuda else "tiny", choices=["tiny", "small", "full"],
                        help="Size preset of the OpenVLA-OFT architecture (full = 7B; bf16 on CUDA).")
    parser.add_argument("--stages", default="1,2", help="Comma list of pipeline_stage_num values.")
    parser.add_argument("--device", default="cuda" if cuda else "cpu", help="Where the policy runs.")
    parser.add_argument("--threads", default="0",
                        help="Comma list of torch thread counts of this (policy) process to compare; 0 keeps torch's "
                             "default (all cores, as `rlvla train` sets OMP_NUM_THREADS).")
    parser.add_argument("--repeats", type=int, default=2, help="Alternating env-only / rollout runs; best kept.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_rollout.json"), help="JSON output.")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> tuple[list[str], list[int], list[int]]:
    """The model, stage and thread lists; a bad flag is a ``UserError`` naming it."""
    models = model_list(args.models, MODELS)
    stages, threads = int_list(args.stages, "--stages"), int_list(args.threads, "--threads", low=0)
    bad = [s for s in stages if args.envs_per_process % s]
    if bad:
        raise UserError(f"{args.envs_per_process} envs per process cannot be split into {bad} stages",
                        key="--envs-per-process", fix=f"use a multiple of {max(stages)}")
    for key, value in (("--processes", args.processes), ("--steps", args.steps), ("--repeats", args.repeats)):
        if value < 1:
            raise UserError(f"must be at least 1, got {value}", key=key)
    return models, stages, threads


def env_config(args: argparse.Namespace):
    """The env config: ``total_num_envs = processes * envs_per_process``."""
    from rlvla_cli.config.env import BuiltinEnvConfig, ManiSkillEnvConfig

    total = args.processes * args.envs_per_process
    if args.env == "builtin":
        return BuiltinEnvConfig(total_num_envs=total, init_params={"image_size": args.image_size})
    import yaml

    spec = yaml.safe_load((REPO / "configs" / "env" / "maniskill_pick_cube.yaml").read_text())
    spec["total_num_envs"] = total
    spec["init_params"] |= {"camera_width": args.image_size, "camera_height": args.image_size}
    return ManiSkillEnvConfig.model_validate(spec)


def build_policy(name: str, args: argparse.Namespace, state_dim: int, action_dim: int):
    """(policy, action chunk C, label). small: configs/model/small.yaml; openvla_oft: bench_models' preset."""
    if name == "openvla_oft":
        policy, cfg = build_vla(name, args.size, args.device)
        return policy, cfg.num_action_chunks, f"openvla_oft/{args.size}"
    import yaml
    from pydantic import TypeAdapter

    from rlvla_cli.config.model import ModelConfig
    from rlvla_cli.models.registry import build_policy as build

    spec = yaml.safe_load((REPO / "configs" / "model" / "small.yaml").read_text())
    spec |= {"state_dim": state_dim, "action_dim": action_dim}
    cfg = TypeAdapter(ModelConfig).validate_python(spec)
    return build(cfg, device=args.device), cfg.num_action_chunks, "small"


class TimedPolicy:
    """What ``RolloutWorker`` calls on a policy (``eval``, ``predict``, ``get_values``), timed.

    CUDA work is synchronised before the clock stops; the worker copies the actions to the CPU right after
    ``predict`` anyway, so this adds no wait the rollout would not have.
    """

    def __init__(self, policy, device: str):
        self.policy = policy
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self.predict_s: list[float] = []
        self.values_s: list[float] = []
        self.batch = 0

    def eval(self) -> TimedPolicy:
        self.policy.eval()
        return self

    def _timed(self, fn, log: list[float], *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        log.append(time.perf_counter() - start)
        return out

    def predict(self, obs, **kwargs):
        self.batch = len(obs["main_images"])
        return self._timed(self.policy.predict, self.predict_s, obs, **kwargs)

    def get_values(self, obs):
        return self._timed(self.policy.get_values, self.values_s, obs)


class TimedPool:
    """The pool API ``RolloutWorker`` uses, recording the seconds spent blocked in ``recv`` and ``reset``."""

    def __init__(self, pool):
        self.pool, self.stages = pool, pool.stages
        self.recv_s: list[float] = []
        self.reset_s = 0.0

    def reset(self, seed=None, reset_state_ids=None):
        start = time.perf_counter()
        out = self.pool.reset(seed=seed, reset_state_ids=reset_state_ids)
        self.reset_s += time.perf_counter() - start
        return out

    def send_actions(self, stage: int, actions: torch.Tensor) -> None:
        self.pool.send_actions(stage, actions)

    def recv(self, stage: int):
        start = time.perf_counter()
        out = self.pool.recv(stage)
        self.recv_s.append(time.perf_counter() - start)
        return out


def env_only(pool, steps: int, chunk: int, seed: int) -> dict[str, float]:
    """Reset + ``steps`` chunk steps of random actions ``[envs_per_stage, chunk, A]`` with every stage in flight
    (the rollout's schedule with free inference). Returns env steps/s and the seconds."""
    actions = torch.rand(pool.envs_per_stage, chunk, pool.action_dim) * 2 - 1
    start = time.perf_counter()
    pool.reset(seed=seed)
    for s in range(pool.stages):
        pool.send_actions(s, actions)
    for t in range(steps):
        for s in range(pool.stages):
            pool.recv(s)
            if t + 1 < steps:
                pool.send_actions(s, actions)
    seconds = time.perf_counter() - start
    return {"steps_per_s": steps * pool.num_envs * chunk / seconds, "seconds": seconds}


def rollout(policy, device: str, pool, steps: int, seed: int) -> dict[str, float]:
    """One ``RolloutWorker.collect`` epoch; env steps/s and where its seconds went (shares of the total)."""
    from rlvla_cli.runtime.rollout_worker import RolloutWorker

    timed_policy, timed_pool = TimedPolicy(policy, device), TimedPool(pool)
    cpu_start = time.process_time()
    result = RolloutWorker(timed_policy, device, timed_pool, steps).collect(seed)
    cpu = time.process_time() - cpu_start  # this process's CPU seconds: taken from the env workers on a full CPU
    total = result.seconds
    predict, values, recv = sum(timed_policy.predict_s), sum(timed_policy.values_s), sum(timed_pool.recv_s)
    return {
        "steps_per_s": result.env_steps / total, "seconds": total, "env_steps": result.env_steps,
        "predict_batch": timed_policy.batch, "predict_calls": len(timed_policy.predict_s),
        "predict_mean_s": predict / len(timed_policy.predict_s),
        "predict_share": predict / total, "values_share": values / total, "recv_wait_share": recv / total,
        "reset_share": timed_pool.reset_s / total, "main_cpu_share": cpu / total,
        "other_share": max(0.0, 1.0 - (predict + values + recv + timed_pool.reset_s) / total),
    }


def pair_median_ratio(rollout_runs: list[dict], env_runs: list[dict]) -> float:
    """Median of rollout / env-only over back-to-back pairs: robust to slow drifts of a shared machine's load,
    which the best-of-each ``ratio`` can pick from different load windows."""
    return statistics.median(r["steps_per_s"] / e["steps_per_s"] for r, e in zip(rollout_runs, env_runs, strict=True))


def bench_case(name: str, stages: int, threads: int, env_cfg, args: argparse.Namespace) -> dict[str, Any]:
    """One model x stages x policy threads: env-only and rollout alternately in one pool; the best of each
    is kept."""
    from rlvla_cli.envs.workers.pool import EnvWorkerPool
    from rlvla_cli.runtime.rollout_worker import RolloutWorker

    torch.set_num_threads(threads)
    with EnvWorkerPool(env_cfg, num_workers=args.processes, stages=stages, seed=args.seed, max_chunk=8) as pool:
        policy, chunk, label = build_policy(name, args, pool.obs_spec.state_dim, pool.action_dim)
        if chunk > pool.max_chunk:
            raise UserError(f"{label} predicts {chunk} actions per chunk, more than the pool's 8", key="--models")
        # warm-up: envs, and torch's first calls per shape (seconds on the CPU for the first two predicts)
        RolloutWorker(policy, args.device, pool, 3).collect(args.seed)
        env_runs, rollout_runs = [], []
        for i in range(args.repeats):
            env_runs.append(env_only(pool, args.steps, chunk, args.seed + i))
            rollout_runs.append(rollout(policy, args.device, pool, args.steps, args.seed + i))
        params = sum(p.numel() for p in policy.parameters())
        del policy
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    env_best = max(env_runs, key=lambda r: r["steps_per_s"])
    best = max(rollout_runs, key=lambda r: r["steps_per_s"])
    return {
        "model": label, "params": params, "chunk": chunk, "stages": stages, "torch_threads": threads,
        "processes": args.processes,
        "num_envs": env_cfg.total_num_envs, "envs_per_stage": env_cfg.total_num_envs // stages,
        "env_steps_per_s": best["steps_per_s"], "env_only_steps_per_s": env_best["steps_per_s"],
        "ratio": best["steps_per_s"] / env_best["steps_per_s"],
        "ratio_pair_median": pair_median_ratio(rollout_runs, env_runs), "predict_mean_s": best["predict_mean_s"],
        "best_rollout": best, "rollout_runs": rollout_runs, "env_only_runs": env_runs,
    }


def machine(device: str) -> dict[str, Any]:
    """CPU model, core count, host, GPU name (when the policy runs on CUDA), torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "host": platform.node(), "gpu": gpu, "torch": torch.__version__}


def print_table(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    m = payload["machine"]
    title = (f"rollout env steps/s, policy in the loop vs env-only ({payload['env']}, {m['cpu_count']} x {m['cpu']}"
             f"{', ' + m['gpu'] if m['gpu'] else ''}, {payload['date']})")
    table = Table(title=title)
    columns = ("model", "chunk", "stages", "threads", "envs", "env steps/s", "env-only steps/s", "ratio",
               "pair median", "predict ms (batch)", "predict %", "recv wait %")
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in payload["rows"]:
        best = row["best_rollout"]
        mark = "" if row["stages"] < 2 else (" ok" if row["ratio"] >= TARGET_RATIO else " < 0.85")
        table.add_row(row["model"], str(row["chunk"]), str(row["stages"]), str(row["torch_threads"]),
                      str(row["num_envs"]), f"{row['env_steps_per_s']:.1f}", f"{row['env_only_steps_per_s']:.1f}",
                      f"{row['ratio']:.2f}{mark}", f"{row['ratio_pair_median']:.2f}",
                      f"{1e3 * row['predict_mean_s']:.1f} ({best['predict_batch']})",
                      f"{100 * best['predict_share']:.0f}", f"{100 * best['recv_wait_share']:.0f}")
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def run(args: argparse.Namespace) -> dict[str, Any]:
    models, stage_list, thread_list = check_args(args)
    default_threads = torch.get_num_threads()
    env_cfg = env_config(args)
    env_name = (f"ManiSkill PickCube-v1 rgb {args.image_size} cpu physics" if args.env == "maniskill"
                else f"builtin {args.image_size}x{args.image_size}")
    payload: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(args.device), "env": env_name,
        "command": " ".join(["python", *sys.argv]), "args": vars(args) | {"out": str(args.out)},
        "default_torch_threads": default_threads, "load_avg_start": os.getloadavg(), "target_ratio": TARGET_RATIO,
        "rows": [],
    }
    for name in models:
        for threads in thread_list:
            for stages in stage_list:
                payload["rows"].append(bench_case(name, stages, threads or default_threads, env_cfg, args))
                payload["load_avg_end"] = os.getloadavg()
                args.out.write_text(json.dumps(payload, indent=2))  # after every case: a failure keeps these
                row = payload["rows"][-1]
                print(f"done: {row['model']} stages={stages} threads={row['torch_threads']} "
                      f"ratio={row['ratio']:.2f}", flush=True)
    torch.set_num_threads(default_threads)
    return payload


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        payload = run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print_table(payload)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

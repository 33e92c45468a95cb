"""LIBERO (or, with --metaworld, MetaWorld MT50) env throughput: env steps/s per process and in total for 1..N
env processes, raw vs env workers.

    python scripts/bench_libero.py --workers 1,2 --sizes 128,224 --out bench_libero.json      # build machine
    python scripts/bench_libero.py --workers 1,2,4,8,16 --sizes 128,224 --out libero_gpu.json  # GPU machine

One env per process (LIBERO steps one robosuite env at a time; more envs per process only serialise), suite
``--suite`` with both cameras (main + wrist, as pi0 reads them), EGL rendering (``render_backend: auto``). Each row:
raw = ``chunk_step`` in N plain processes; workers = the same envs through ``EnvWorkerPool`` and its shared-memory
channels (1 stage); overhead = raw / workers - 1. Uses bench_envs.py's helpers. ``--fast-render`` adds rows
without shadows / multisampling (images differ from LIBERO's demonstrations; see LiberoInitParams.fast_render).
Rows with N + 1 > cores are oversubscribed (flagged *).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_envs import bench_raw, bench_workers  # noqa: E402
from bench_models import int_list  # noqa: E402

from rlvla_cli.config.env import LiberoEnvConfig, MetaWorldEnvConfig  # noqa: E402
from rlvla_cli.errors import UserError  # noqa: E402


def machine_info() -> dict:
    info = {"cpu_count": os.cpu_count(), "host": platform.node(), "date": time.strftime("%Y-%m-%d"),
            "python": platform.python_version(), "mujoco_gl": os.environ.get("MUJOCO_GL", "auto"),
            "load_avg_1m": os.getloadavg()[0]}
    try:
        import mujoco

        info["mujoco"] = mujoco.__version__
    except ImportError:
        pass
    return info


def config(args, processes: int, size: int, fast: bool):
    if args.metaworld:  # MT50 task ids 0, 1, ... one per process; one camera
        return MetaWorldEnvConfig(
            total_num_envs=processes, max_episode_steps=400, auto_reset=False,
            init_params={"camera_height": size, "camera_width": size, "task_ids": list(range(processes))},
        )
    return LiberoEnvConfig(
        total_num_envs=processes, max_episode_steps=10_000, auto_reset=False,
        init_params={"task_suite_name": args.suite, "camera_height": size, "camera_width": size,
                     "assets_dir": args.assets_dir, "fast_render": fast, "num_steps_wait": 2},
    )


def save(path: str, rows: list[dict]) -> None:
    with open(path, "w") as f:
        json.dump({**machine_info(), "rows": rows}, f, indent=2)


def run(args) -> list[dict]:
    rows, cores = [], os.cpu_count() or 1
    for fast in (False, True) if args.fast_render and not args.metaworld else (False,):
        for size in args.sizes:
            for processes in args.workers:
                cfg = config(args, processes, size, fast)
                raw = workers = 0.0
                for _ in range(args.repeats):
                    raw = max(raw, bench_raw(cfg, processes, args.chunk, args.chunks))
                    workers = max(workers, bench_workers(cfg, processes, args.chunk, args.chunks))
                suite = "metaworld_50" if args.metaworld else args.suite
                rows.append({"suite": suite, "size": size, "fast_render": fast, "processes": processes,
                             "chunk": args.chunk, "chunks": args.chunks, "raw_steps_per_s": raw,
                             "raw_per_process": raw / processes, "workers_steps_per_s": workers,
                             "workers_per_process": workers / processes, "overhead_pct": 100 * (raw / workers - 1),
                             "oversubscribed": processes + 1 > cores})
                save(args.out, rows)
                print(f"done: {size}px x{processes} fast={fast}: raw {raw:.2f} workers {workers:.2f}", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench_libero.json")
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--assets-dir", default=None, help="Asset tree (default: the installed PyPI packages).")
    parser.add_argument("--workers", default="1,2", help="Comma list of env process counts.")
    parser.add_argument("--sizes", default="128,224", help="Comma list of square camera sizes.")
    parser.add_argument("--chunk", type=int, default=5, help="Actions per chunk_step.")
    parser.add_argument("--chunks", type=int, default=6, help="Timed chunks per process.")
    parser.add_argument("--repeats", type=int, default=1, help="Alternating runs per way; the best is kept.")
    parser.add_argument("--fast-render", action="store_true", help="Also measure fast_render rows.")
    parser.add_argument("--metaworld", action="store_true", help="Measure MetaWorld MT50 instead of LIBERO.")
    args = parser.parse_args(argv)
    try:
        args.workers = int_list(args.workers, "--workers")
        args.sizes = int_list(args.sizes, "--sizes")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    rows = run(args)
    from rich.console import Console
    from rich.table import Table

    info = machine_info()
    name = "MetaWorld MT50" if args.metaworld else f"LIBERO {args.suite}"
    table = Table(title=f"{name} env steps/s ({info['cpu_count']} cores, {info['host']}, "
                  f"MUJOCO_GL={info['mujoco_gl']}); * = oversubscribed")
    for column in ("px", "fast", "procs", "raw total", "raw /proc", "workers total", "workers /proc", "overhead"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["size"]), "yes" if row["fast_render"] else "no",
                      f"{row['processes']}{'*' if row['oversubscribed'] else ''}",
                      *(f"{row[k]:.2f}" for k in ("raw_steps_per_s", "raw_per_process", "workers_steps_per_s",
                                                  "workers_per_process")), f"{row['overhead_pct']:+.1f}%")
    Console(width=140).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Several `scripts/vla_learning.py` pipelines side by side (a many-core machine standing in for several 2-core
ones), each pinned to a few threads, then one table of how far each got.

    python scripts/vla_sweep.py --out runs/sweep --threads 2 --time-budget-s 540 \\
        --variant oft_mini="--models openvla_oft --demos 1000 --action-noise 0.1 --extra actor.model.size=mini" \\
        --variant pi0_mini="--models pi0_flow_noise --demos 1000 --extra actor.model.size=mini"

Each variant runs in OUT/NAME (resumable like vla_learning.py: repeat the command to continue). The table shows,
per variant and model, the SFT wall-clock, the held-out base success, the RL steps so far with the first and last
training success and the last in-loop eval, and the held-out success of the finished RL policies. Saves
OUT/sweep.json. ``--cpu`` hides GPUs, so the runs use the CPU code path of a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "vla_learning.py"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Sweep directory (one sub-directory per variant).")
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=ARGS",
                        help="A name and the vla_learning.py arguments of one pipeline (repeatable).")
    parser.add_argument("--threads", type=int, default=2, help="OMP / torch threads per pipeline.")
    parser.add_argument("--time-budget-s", type=float, default=540.0, help="Budget of every pipeline.")
    parser.add_argument("--cpu", action="store_true", help="Hide GPUs (CUDA_VISIBLE_DEVICES='').")
    return parser.parse_args(argv)


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'NAME=--models a --demos 5' -> ('NAME', ['--models', 'a', '--demos', '5'])."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip():
        raise SystemExit(f"--variant {text!r}: expected NAME=ARGS")
    return name.strip(), shlex.split(rest)


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def success(report_dir: Path, eval_set: str = "eval") -> float | None:
    path = report_dir / "report.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["eval_sets"][eval_set]["average"]["success_rate"]


def rl_summary(run_dir: Path) -> dict:
    """RL steps so far, training success at the first and last step, the last in-loop eval."""
    points = read_jsonl(run_dir / "metrics.jsonl")
    train = [p["env/success_once"] for p in points if "env/success_once" in p]
    evals = [p["eval/success_once"] for p in points if "eval/success_once" in p]
    return {"steps": max((int(p.get("step", 0)) for p in points), default=0),
            "train_first": train[0] if train else None, "train_last": train[-1] if train else None,
            "eval_last": evals[-1] if evals else None}


def variant_summary(out: Path) -> list[dict]:
    """One row per model directory of a vla_learning.py experiment."""
    seconds_file = out / "stages" / "seconds.json"
    spent = json.loads(seconds_file.read_text()) if seconds_file.is_file() else {}
    rows = []
    for model_dir in sorted(p for p in out.iterdir() if (p / "sft").is_dir()) if out.is_dir() else []:
        model = model_dir.name
        row = {"model": model, "sft_s": spent.get(f"sft_{model}"),
               "base": success(model_dir / "eval" / "base"), "base_ood": success(model_dir / "eval" / "base", "ood")}
        for algo in ("ppo", "grpo"):
            row[algo] = rl_summary(model_dir / algo)
            row[f"{algo}_s"] = spent.get(f"{algo}_{model}")
            row[f"{algo}_heldout"] = success(model_dir / "eval" / algo)
        rows.append(row)
    return rows


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONUNBUFFERED": "1"}
    if args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    variants = [parse_variant(v) for v in args.variant]
    started = time.time()
    procs = []
    for name, extra in variants:
        directory = args.out / name
        directory.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(SCRIPT), "--out", str(directory), "--time-budget-s", str(args.time_budget_s),
                   "--report", str(directory / "results.md"), "--results-dir", str(directory / "results"), *extra]
        log = open(directory / "sweep.log", "a")  # noqa: SIM115 - closed after the wait
        procs.append((name, subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for _, proc, log in procs:
        proc.wait()
        log.close()
    rows = []
    for name, _ in variants:
        for row in variant_summary(args.out / name):
            rows.append({"variant": name, **row})
    header = (f"{'variant':<16} {'model':<15} {'sft s':>6} {'base':>5} {'ood':>5} | {'ppo st':>6} {'first':>5} "
              f"{'last':>5} {'eval':>5} {'held':>5} | {'grpo st':>7} {'first':>5} {'last':>5} {'held':>5}")
    print(header)
    for r in rows:
        p, g = r["ppo"], r["grpo"]
        print(f"{r['variant']:<16} {r['model']:<15} {fmt(r['sft_s'] and round(r['sft_s'])):>6} {fmt(r['base']):>5} "
              f"{fmt(r['base_ood']):>5} | {p['steps']:>6} {fmt(p['train_first']):>5} {fmt(p['train_last']):>5} "
              f"{fmt(p['eval_last']):>5} {fmt(r['ppo_heldout']):>5} | {g['steps']:>7} {fmt(g['train_first']):>5} "
              f"{fmt(g['train_last']):>5} {fmt(r['grpo_heldout']):>5}")
    (args.out / "sweep.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "threads_per_variant": args.threads},
        "wall_s": time.time() - started, "variants": dict(variants), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the built-in quickstart (`rlvla train`) and plot eval success against wall-clock time.

Usage: python scripts/quickstart_curve.py [--out DIR] [--eval-every N] [--time-limit-s S] [--config F]
       [--resume] [--stop-at-success X] [--title T] [a.b=c ...]
Writes DIR/curve.json (every eval point and the training success per step) and DIR/curve.png, and prints
the curve as a table. The time axis starts when the `rlvla train` process starts (startup included).
``--resume`` continues DIR/run from its newest checkpoint (a long run split into time-limited commands); the
time axis then adds up the commands' own durations (DIR/segments.json), leaving out the gaps between them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart_curve"), help="Output directory.")
    parser.add_argument("--eval-every", type=int, default=5, help="runner.val_check_interval for the run.")
    parser.add_argument("--time-limit-s", type=float, default=600.0, help="Stop the run after this many seconds.")
    parser.add_argument("--config", type=Path, default=None, help="Config file (default: the built-in quickstart).")
    parser.add_argument("--resume", action="store_true", help="Continue DIR/run from its newest checkpoint.")
    parser.add_argument("--stop-at-success", type=float, default=None,
                        help="End the run once an eval's success_once reaches this value.")
    parser.add_argument("--title", default="rlvla quickstart (built-in task)", help="Plot title.")
    parser.add_argument("overrides", nargs="*", help="Extra a.b=c overrides.")
    return parser.parse_args()


def run_seconds(wall_time: float, segments: list[list[float]]) -> float | None:
    """Seconds of run time at ``wall_time``: time into its segment plus the whole earlier segments.
    ``segments``: ``[start, end]`` wall times of the commands in order (the last end may be ``inf``); None when
    ``wall_time`` falls in no segment (e.g. a record of an older run in the same directory)."""
    before = 0.0
    for start, end in segments:
        if start <= wall_time <= end:
            return before + wall_time - start
        before += end - start
    return None


def read_curve(metrics_file: Path, start: float | list[list[float]]) -> dict:
    """Eval points and per-step training success from metrics.jsonl, times relative to ``start`` (one wall time,
    or the ``[start, end]`` segments of a resumed run; see :func:`run_seconds`). Points carry the env steps so
    far (``env_steps``) when the run logs them."""
    segments = [[start, math.inf]] if isinstance(start, (int, float)) else start
    evals, train, env_steps = [], [], None
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        seconds = run_seconds(record["wall_time"], segments)
        if seconds is None:
            continue
        env_steps = record.get("perf/total_env_steps", env_steps)
        point = {"step": record["step"], "seconds": seconds, "env_steps": env_steps}
        if record.get("eval/success_once") is not None:
            evals.append({**point, "success_once": record["eval/success_once"]})
        elif record.get("env/success_once") is not None:
            train.append({**point, "success_once": record["env/success_once"]})
    return {"eval": evals, "train": train}


def plot(curve: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([p["seconds"] / 60 for p in curve["train"]], [p["success_once"] for p in curve["train"]],
            alpha=0.4, label="train rollouts (sampled)")
    ax.plot([p["seconds"] / 60 for p in curve["eval"]], [p["success_once"] for p in curve["eval"]],
            marker="o", label="eval (greedy)")
    ax.axhline(0.8, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("wall-clock minutes")
    ax.set_ylabel("success_once")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def reached_success(metrics_file: Path, segments: list[list[float]], target: float) -> bool:
    """Whether an eval of this run (its segments) has reached success_once >= ``target``."""
    if not metrics_file.is_file():
        return False
    try:
        curve = read_curve(metrics_file, segments)
    except json.JSONDecodeError:  # a line caught half-written
        return False
    return any(p["success_once"] >= target for p in curve["eval"])


def wait_for_run(proc: subprocess.Popen, deadline: float, metrics_file: Path, segments: list[list[float]],
                 stop_at_success: float | None) -> None:
    """Wait until the run exits, the deadline passes or (when asked) an eval reaches ``stop_at_success``;
    the last two end it with SIGTERM, on which the run checkpoints and exits."""
    while proc.poll() is None:
        if time.time() >= deadline or (
            stop_at_success is not None and reached_success(metrics_file, segments, stop_at_success)
        ):
            proc.terminate()
            proc.wait(timeout=120)
            return
        time.sleep(1.0)


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.out / "run"
    command = [sys.executable, "-m", "rlvla_cli", "train"]
    if args.config:
        command += ["--config", str(args.config)]
    command += [f"runner.output_dir={run_dir}", f"runner.val_check_interval={args.eval_every}", *args.overrides]
    if args.resume:
        command.append("runner.resume_dir=auto")  # newest checkpoint of run_dir; none yet starts afresh
    segments_file = args.out / "segments.json"
    segments = json.loads(segments_file.read_text()) if args.resume and segments_file.is_file() else []
    start = time.time()
    segments.append([start, math.inf])
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_for_run(proc, start + args.time_limit_s, run_dir / "metrics.jsonl", segments, args.stop_at_success)
    segments[-1][1] = time.time()
    segments_file.write_text(json.dumps(segments))
    curve = read_curve(run_dir / "metrics.jsonl", segments)
    curve.update(command=command, returncode=proc.returncode, total_seconds=sum(e - s for s, e in segments),
                 segments=len(segments))
    reached = next((p for p in curve["eval"] if p["success_once"] >= 0.8), None)
    curve["first_eval_at_0.8"] = reached
    (args.out / "curve.json").write_text(json.dumps(curve, indent=2))
    plot(curve, args.out / "curve.png", args.title)
    print(f"{'step':>6} {'env steps':>10} {'minutes':>8} {'eval success_once':>18}")
    for point in curve["eval"]:
        steps = "-" if point["env_steps"] is None else f"{int(point['env_steps'])}"
        print(f"{point['step']:>6} {steps:>10} {point['seconds'] / 60:>8.2f} {point['success_once']:>18.3f}")
    if reached:
        print(f"eval success_once >= 0.8 first at step {reached['step']} after {reached['seconds'] / 60:.2f} min")
    else:
        print("eval success_once never reached 0.8")
    print(f"wrote {args.out / 'curve.json'} and {args.out / 'curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

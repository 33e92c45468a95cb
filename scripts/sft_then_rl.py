"""Demonstrations -> SFT base -> PPO and GRPO -> held-out and OOD evaluation, as RLinf's tables show it.

Every stage is a real `rlvla` command run as a subprocess; a stage that finishes writes OUT/stages/NAME.json,
and a rerun skips it, so a long experiment proceeds across commands of limited length (`--time-budget-s`):
an RL stage still running at the budget is stopped with SIGTERM (it checkpoints) and resumes next time.

    python scripts/sft_then_rl.py --out results/pickcube --demos 10 --rl-epochs 60 --eval-episodes 64
    python scripts/sft_then_rl.py --out results/pickcube ...   # again, until it prints the table

Writes OUT/results.md (table with episode counts and 95% Wilson intervals), OUT/results.json and
OUT/curves.png (training success of PPO and GRPO against steps).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GRPO_OVERRIDES = [
    "algorithm.adv_type=grpo", "algorithm.loss_type=actor", "algorithm.normalize_advantages=false",
    "algorithm.group_size=4", "env.train.group_size=4", "env.eval.group_size=1",
    "env.train.auto_reset=false",  # a GRPO score is one episode per env (config rule, as RLinf)
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Experiment directory (resumable).")
    parser.add_argument("--config", default="configs/maniskill_sft_small.yaml", help="SFT + RL config.")
    parser.add_argument("--env", default="PickCube-v1", help="ManiSkill task with a motion planner.")
    parser.add_argument("--demos", type=int, default=10, help="Demonstrations (few on purpose: a mediocre base).")
    parser.add_argument("--image-size", type=int, default=64, help="Camera size of demos, SFT and RL.")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="Env processes.")
    parser.add_argument("--sft-epochs", type=int, default=20, help="SFT passes over the demonstrations.")
    parser.add_argument("--rl-epochs", type=int, default=60, help="RL steps of PPO and of GRPO.")
    parser.add_argument("--eval-episodes", type=int, default=64, help="Episodes per eval set and checkpoint.")
    parser.add_argument("--time-budget-s", type=float, default=540.0, help="Stop (resumably) after this long.")
    parser.add_argument("--extra", nargs="*", default=[], help="Overrides passed to every stage (a.b=c).")
    return parser.parse_args(argv)


class Experiment:
    """The stages and their bookkeeping under ``out``."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.out = args, args.out.resolve()
        self.deadline = time.time() + args.time_budget_s
        (self.out / "stages").mkdir(parents=True, exist_ok=True)

    # ---- bookkeeping -----------------------------------------------------------------------------------
    def done(self, name: str) -> bool:
        return (self.out / "stages" / f"{name}.json").exists()

    def mark(self, name: str, **info) -> None:
        (self.out / "stages" / f"{name}.json").write_text(json.dumps({"finished": time.time(), **info}))

    def common(self) -> list[str]:
        size = self.args.image_size
        return [
            f"env.train.init_params.id={self.args.env}", f"env.train.init_params.camera_width={size}",
            f"env.train.init_params.camera_height={size}", f"actor.model.image_size={size}",
            f"sft.dataset_path={self.out / 'demos'}", *self.args.extra,
        ]

    def run(self, name: str, command: list[str], allow_interrupt: bool = False) -> bool:
        """Run one stage; True when it finished, False when the time budget stopped it (resumable)."""
        left = self.deadline - time.time()
        if left < 30:
            return False
        print(f"[{name}] {' '.join(command)}", flush=True)
        log = open(self.out / f"{name}.log", "a")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            if not allow_interrupt:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return False
            os.killpg(proc.pid, signal.SIGTERM)  # the runner checkpoints and exits 130
            code = proc.wait(timeout=120)
        finally:
            log.close()
        if code == 130 and allow_interrupt:
            return False
        if code != 0:
            raise SystemExit(f"[{name}] failed with exit code {code}; see {self.out / (name + '.log')}")
        return True

    # ---- stages ----------------------------------------------------------------------------------------
    def stage(self, name: str, command: list[str], allow_interrupt: bool = False, **info) -> bool:
        if self.done(name):
            return True
        if self.run(name, command, allow_interrupt):
            self.mark(name, command=command, **info)
            return True
        return False

    def rlvla(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "rlvla_cli", *args]

    def pipeline(self) -> bool:
        a, out, cfg = self.args, self.out, self.args.config
        sft_policy = out / "sft" / "sft_policy"
        rl_common = [f"actor.model.model_path={sft_policy}", "runner.resume_dir=auto",
                     f"runner.max_epochs={a.rl_epochs}", *self.common()]
        steps = [
            ("collect", self.rlvla("collect-demos", "--env", a.env, "-n", str(a.demos), "--out", str(out / "demos"),
                                   "--workers", str(a.workers), "--image-size", str(a.image_size)), False),
            ("sft", self.rlvla("sft", "--config", cfg, f"runner.output_dir={out / 'sft'}",
                               f"sft.num_epochs={a.sft_epochs}", "sft.eval_episodes=0", *self.common()), False),
            ("ppo", self.rlvla("train", "--config", cfg, f"runner.output_dir={out / 'ppo'}", *rl_common), True),
            ("grpo", self.rlvla("train", "--config", cfg, f"runner.output_dir={out / 'grpo'}", *rl_common,
                                *GRPO_OVERRIDES), True),
        ]
        for name, command, resumable in steps:
            if not self.stage(name, command, resumable):
                return False
        for label, checkpoint in (("base", sft_policy), ("ppo", out / "ppo"), ("grpo", out / "grpo")):
            command = self.rlvla("eval", "--config", cfg, "--checkpoint", str(checkpoint), "--episodes",
                                 str(a.eval_episodes), "--out", str(out / "eval" / label), *self.common())
            if not self.stage(f"eval_{label}", command):
                return False
        return True


def write_report(out: Path) -> str:
    """results.md / results.json from the three eval reports, curves.png from the RL metrics."""
    rows, payload = [], {}
    for label in ("base", "ppo", "grpo"):
        report = json.loads((out / "eval" / label / "report.json").read_text())
        payload[label] = report
        for eval_set, entry in report["eval_sets"].items():
            avg = entry["average"]
            low, high = avg["ci95_low"], avg["ci95_high"]
            rows.append(f"| {label} | {eval_set} | {100 * avg['success_rate']:.1f}% | "
                        f"[{100 * low:.1f}, {100 * high:.1f}] | {avg['episodes']} | {avg['mean_episode_len']:.1f} |")
    table = "\n".join(["| policy | eval set | success | 95% interval | episodes | mean length |",
                       "| --- | --- | --- | --- | --- | --- |", *rows])
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    (out / "results.md").write_text(table + "\n")
    plot_curves(out)
    return table


def plot_curves(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label in ("ppo", "grpo"):
        path = out / label / "metrics.jsonl"
        if not path.exists():
            continue
        points = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        xs = [p["step"] for p in points if "env/success_once" in p]
        ys = [p["env/success_once"] for p in points if "env/success_once" in p]
        ax.plot(xs, ys, label=f"{label.upper()} (train)")
    ax.set_xlabel("RL step")
    ax.set_ylabel("success_once")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)


def main(argv=None) -> int:
    args = parse_args(argv)
    experiment = Experiment(args)
    if not experiment.pipeline():
        print(f"time budget reached; run the same command again to continue ({args.out})")
        return 0
    print(write_report(experiment.out))
    print(f"wrote {experiment.out / 'results.md'}, results.json and curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

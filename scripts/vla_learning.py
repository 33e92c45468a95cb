"""VLAs learn on the built-in task, on a CPU: demos -> SFT -> PPO and GRPO -> held-out and OOD evaluation.

For each model (``configs/builtin_{sft,ppo,grpo}_<model>.yaml``) every stage is a real `rlvla` command run as
a subprocess. A finished stage writes OUT/stages/NAME.json (with its wall-clock); a rerun skips it, and an RL
stage stopped by the time budget (SIGTERM: it checkpoints) resumes from its checkpoint, so the whole experiment
proceeds across commands of limited length:

    python scripts/vla_learning.py --models openvla_oft --out runs/vla_learning   # repeat until it reports

Evaluation (``rlvla eval``, greedy) runs the SFT base, the final PPO and the final GRPO policy on held-out
in-distribution scenes (``env.eval``: fixed state ids from 100000, never in the demos or in RL training) and on
the OOD split (``env.eval_sets.ood``: a colour and a phrasing withheld from demos and RL). Writes
``--report`` (docs/results.md: RLinf-shaped table base -> RL, in-distribution / OOD, 95% Wilson intervals,
episode counts, wall-clock and env steps) and per model a learning curve and a short eval video under
``--results-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("openvla_oft", "pi0_flow_noise", "pi0_flow_sde", "openvla")
# Models whose SFT is another's: flow-noise and flow-SDE differ only in how RL samples, so pi0's SFT base is
# trained once and both RL variants start from it (the same base row, as in RLinf's tables).
SHARED_SFT = {"pi0_flow_sde": "pi0_flow_noise"}
LABELS = {"openvla_oft": "OpenVLA-OFT", "pi0_flow_noise": "pi0 flow-noise", "pi0_flow_sde": "pi0 flow-SDE",
          "openvla": "OpenVLA"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/vla_learning"), help="Experiment dir (resumable).")
    parser.add_argument("--models", nargs="+", default=["openvla_oft"], choices=MODELS, help="Models, in order.")
    parser.add_argument("--demos", type=int, default=4000,
                        help="Expert demos (pi0's SFT preset takes 8 epochs of 4000; OFT / OpenVLA cap their steps).")
    parser.add_argument("--action-noise", type=float, default=0.1, help="Expert action noise (imperfect demos).")
    parser.add_argument("--rl-epochs", type=int, default=None, help="RL steps (default: the config's).")
    parser.add_argument("--eval-episodes", type=int, default=128, help="Episodes per eval set and policy.")
    parser.add_argument("--time-budget-s", type=float, default=540.0, help="Stop (resumably) after this long.")
    parser.add_argument("--report", type=Path, default=None, help="Markdown report (default OUT/results.md).")
    parser.add_argument("--results-dir", type=Path, default=None, help="Curves and videos (default OUT/results).")
    parser.add_argument("--extra", nargs="*", default=[], help="Overrides passed to every stage (a.b=c).")
    return parser.parse_args(argv)


class Experiment:
    """Stages and their bookkeeping under ``out``."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.out = args, args.out.resolve()
        self.deadline = time.time() + args.time_budget_s
        (self.out / "stages").mkdir(parents=True, exist_ok=True)

    def done(self, name: str) -> bool:
        return (self.out / "stages" / f"{name}.json").exists()

    def _add_time(self, name: str, seconds: float) -> float:
        """Accumulate the wall-clock a stage took over every command that worked on it."""
        path = self.out / "stages" / "seconds.json"
        spent = json.loads(path.read_text()) if path.exists() else {}
        spent[name] = spent.get(name, 0.0) + seconds
        path.write_text(json.dumps(spent, indent=1))
        return spent[name]

    def run(self, name: str, command: list[str], resumable: bool) -> bool:
        """Run one stage; True when it finished, False when the time budget stopped it."""
        left = self.deadline - time.time()
        if left < 30:
            return False
        print(f"[{name}] {' '.join(command)}", flush=True)
        started = time.time()
        with open(self.out / f"{name}.log", "a") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM if resumable else signal.SIGKILL)  # the runner checkpoints
                code = proc.wait(timeout=120)
                if not resumable:  # demos / SFT / eval restart from scratch: they must fit in one command
                    print(f"[{name}] stopped by the time budget and will start over; it needs one command of "
                          f"about {time.time() - started:.0f} s or more (--time-budget-s)", flush=True)
                    code = 130
        seconds = self._add_time(name, time.time() - started)
        if code == 130:
            return False
        if code != 0:
            raise SystemExit(f"[{name}] failed with exit code {code}; see {self.out / (name + '.log')}")
        (self.out / "stages" / f"{name}.json").write_text(json.dumps({"seconds": seconds, "command": command}))
        return True

    def stage(self, name: str, command: list[str], resumable: bool = False) -> bool:
        return self.done(name) or self.run(name, command, resumable)

    @staticmethod
    def rlvla(*args: str) -> list[str]:
        return [sys.executable, "-m", "rlvla_cli", *args]

    def model(self, model: str) -> bool:
        a, out = self.args, self.out
        sft_owner = SHARED_SFT.get(model) if SHARED_SFT.get(model) in a.models else model
        sft_policy = out / sft_owner / "sft" / "sft_policy"
        common = [f"sft.dataset_path={out / 'demos'}", *a.extra]
        rl = [f"actor.model.model_path={sft_policy}", "runner.resume_dir=auto", *common]
        if a.rl_epochs:
            rl.append(f"runner.max_epochs={a.rl_epochs}")
        config = {kind: f"configs/builtin_{kind}_{model}.yaml" for kind in ("sft", "ppo", "grpo")}
        checkpoints = {"base": sft_policy, "ppo": out / model / "ppo", "grpo": out / model / "grpo"}
        evals = {label: (f"eval_{label}_{model}", self.rlvla(
            "eval", "--config", config["grpo" if label == "grpo" else "ppo"], "--checkpoint", str(checkpoint),
            "--episodes", str(a.eval_episodes), "--out", str(out / model / "eval" / label), *common), False)
            for label, checkpoint in checkpoints.items()}
        steps = [
            (f"sft_{sft_owner}", self.rlvla("sft", "--config", config["sft"],
                                            f"runner.output_dir={out / sft_owner / 'sft'}", "sft.eval_episodes=0",
                                            *common), False),
            evals["base"],  # the base's numbers exist as soon as SFT does
            (f"ppo_{model}", self.rlvla("train", "--config", config["ppo"], f"runner.output_dir={out / model / 'ppo'}",
                                        *rl), True),
            evals["ppo"],
            (f"grpo_{model}", self.rlvla("train", "--config", config["grpo"],
                                         f"runner.output_dir={out / model / 'grpo'}", *rl), True),
            evals["grpo"],
        ]
        for name, command, resumable in steps:
            if not self.stage(name, command, resumable):
                return False
        return True

    def pipeline(self) -> bool:
        a = self.args
        collect = self.rlvla("collect-demos", "--env", "builtin", "-n", str(a.demos), "--action-noise",
                             str(a.action_noise), "--out", str(self.out / "demos"))
        if not self.stage("collect", collect):
            return False
        return all(self.model(m) for m in a.models)


# ---- report ---------------------------------------------------------------------------------------------


def _cell(entry: dict) -> str:
    avg = entry["average"]
    return (f"{100 * avg['success_rate']:.1f}% [{100 * avg['ci95_low']:.1f}, {100 * avg['ci95_high']:.1f}] "
            f"(n={avg['episodes']})")


def _rl_progress(run_dir: Path) -> tuple[int, int]:
    """(RL steps, env steps) of a finished run, from its metrics.jsonl and resolved config."""
    import yaml

    points = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = max((int(p.get("step", 0)) for p in points), default=0)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else None
    if not cfg:
        return steps, -1
    train = cfg["env"]["train"]
    per_step = train["total_num_envs"] * train["max_steps_per_rollout_epoch"] * train.get("rollout_epoch", 1)
    return steps, steps * per_step


def model_section(out: Path, model: str, results_dir: Path) -> tuple[str, str]:
    """(table row, detail paragraph) of one model."""
    reports = {label: json.loads((out / model / "eval" / label / "report.json").read_text())["eval_sets"]
               for label in ("base", "ppo", "grpo")}
    spent = json.loads((out / "stages" / "seconds.json").read_text())
    row = (f"| {LABELS[model]} | {_cell(reports['base']['eval'])} | {_cell(reports['ppo']['eval'])} | "
           f"{_cell(reports['grpo']['eval'])} | {_cell(reports['base']['ood'])} | {_cell(reports['ppo']['ood'])} | "
           f"{_cell(reports['grpo']['ood'])} |")
    owner = SHARED_SFT.get(model, model)
    sft = spent.get(f"sft_{owner}", spent.get(f"sft_{model}", 0.0))
    shared = f" (the {LABELS[owner]} base)" if f"sft_{owner}" in spent and owner != model else ""
    lines = [f"**{LABELS[model]}**: demos {spent.get('collect', 0):.0f} s, SFT {sft:.0f} s{shared}"]
    for algo in ("ppo", "grpo"):
        rl_steps, env_steps = _rl_progress(out / model / algo)
        lines.append(f"{algo.upper()} {spent[f'{algo}_{model}']:.0f} s for {rl_steps} RL steps ({env_steps} env steps)")
    evals = sum(spent.get(f"eval_{label}_{model}", 0) for label in ("base", "ppo", "grpo"))
    lines.append(f"evaluation {evals:.0f} s; curve `{plot_curve(out, model, results_dir).name}`")
    video = copy_video(out, model, results_dir)
    if video:
        lines.append(f"video `{video.name}`")
    return row, "; ".join(lines) + "."


def plot_curve(out: Path, model: str, results_dir: Path) -> Path:
    """Training and in-loop eval success of PPO and GRPO against env steps -> results_dir/<model>_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for algo, colour in (("ppo", "tab:blue"), ("grpo", "tab:orange")):
        run = out / model / algo
        points = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        _, env_steps = _rl_progress(run)
        rl_steps = max(1, max(int(p.get("step", 0)) for p in points))
        scale = env_steps / rl_steps if env_steps > 0 else 1
        for key, style in (("env/success_once", ":"), ("eval/success_once", "-")):
            pts = [(p["step"] * scale, p[key]) for p in points if key in p]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, color=colour, label=f"{algo.upper()} {key.split('/')[0]}")
    ax.set_xlabel("env steps" if scale != 1 else "RL step")
    ax.set_ylabel("success_once")
    ax.set_ylim(0, 1)
    ax.set_title(LABELS[model])
    ax.legend(fontsize=7)
    fig.tight_layout()
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{model}_curve.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def copy_video(out: Path, model: str, results_dir: Path) -> Path | None:
    """The first eval video of the best RL policy (under 1 MB), copied to results_dir."""
    for label in ("ppo", "grpo"):
        for video in sorted((out / model / "eval" / label).rglob("*.mp4")):
            if video.stat().st_size < 1_000_000:
                target = results_dir / f"{model}_{label}_eval.mp4"
                shutil.copyfile(video, target)
                return target
    return None


def write_report(args: argparse.Namespace) -> str:
    out = args.out.resolve()
    results_dir = args.results_dir or out / "results"
    rows, details = [], []
    for model in args.models:
        if all((out / "stages" / f"eval_{label}_{model}.json").exists() for label in ("base", "ppo", "grpo")):
            row, detail = model_section(out, model, results_dir)
            rows.append(row)
            details.append(detail)
    table = "\n".join([
        "| model | base (held-out) | PPO (held-out) | GRPO (held-out) | base (OOD) | PPO (OOD) | GRPO (OOD) |",
        "| --- | --- | --- | --- | --- | --- | --- |", *rows])
    body = table + "\n\n" + "\n\n".join(details) + "\n"
    report = args.report or out / "results.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(splice(report.read_text() if report.exists() else "", body))
    return body


BEGIN, END = "<!-- vla_learning:begin -->", "<!-- vla_learning:end -->"


def splice(document: str, body: str) -> str:
    """``document`` with the text between the BEGIN / END markers replaced by ``body`` (appended when absent)."""
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return (document.rstrip() + "\n\n" if document.strip() else "") + block + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    experiment = Experiment(args)
    finished = experiment.pipeline()
    body = write_report(args)
    print(body)
    if not finished:
        print(f"time budget reached; run the same command again to continue ({args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

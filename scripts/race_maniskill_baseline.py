"""Race rlvla against ManiSkill's own CPU PPO baseline on a state task: eval success vs env steps and wall-clock.

Usage:
  python scripts/race_maniskill_baseline.py [--seeds 0 1 2] [--env-steps 64000] [--sides rlvla baseline]
      [--config configs/maniskill_ppo_small_pushcube_state_parity.yaml] [--env-id PushCube-v1] [--out DIR]
      [--eval-every-steps 4000] [--eval-envs 32] [--baseline-script PATH --baseline-python PY] [a.b=c ...]

Sides, each run as its own process one after the other (``--parallel`` runs every side and seed at once: the
env-step curves stay valid, the wall-clock does not):

- ``rlvla``: ``python -m rlvla_cli train --config CONFIG runner.seed=S`` (extra ``a.b=c`` overrides go to it),
  curve read from its metrics.jsonl.
- ``baseline``: by default ``--run-baseline``, this file's own re-implementation of the documented behaviour of
  haosulab/ManiSkill examples/baselines/ppo/ppo_cpu.py with the settings the issue-15 measurement used
  (16 envs x 50 steps per rollout, 8 epochs x 8 minibatches, pd_joint_delta_pos, gamma 0.8, lambda 0.9,
  lr 3e-4, Adam eps 1e-5, target_kl 0.1, finite-horizon GAE, per-minibatch advantage normalisation, no value
  clip, vf_coef 0.5, grad clip 0.5, separate 3x256 tanh actor / critic MLPs with orthogonal init, log-std
  -0.5, actions clipped to the Box, episodes end on success and every done bootstraps V(final obs)). Its envs
  step one after the other in this process (the original spreads them over 16 forkserver processes). With
  ``--baseline-script`` the user's own copy of ppo_cpu.py runs instead, under ``--baseline-python`` (it needs
  gymnasium 0.29.1, whose vector envs return ``final_observation``: e.g. ``python -m venv
  --system-site-packages /tmp/msb && /tmp/msb/bin/pip install gymnasium==0.29.1``); its stdout is parsed
  (``global_step=`` and ``eval_success_once_mean=`` lines).

Both sides evaluate greedily on ``--eval-envs`` full episodes (no early end) every ``--eval-every-steps`` env
steps (the rlvla side through ``runner.val_check_interval``). Writes DIR/race.json, DIR/race.png and prints a
table: per side and seed the env steps and minutes at which eval success_once first reached 0.5 / 0.8, the
final success and env steps/s; then the median over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # rlvla_cli from this checkout, as `python -m rlvla_cli` from the repo root
THRESHOLDS = (0.5, 0.8)
PARITY_PRESET = "maniskill_ppo_small_pushcube_state_parity"
GLOBAL_STEP = re.compile(r"global_step=(\d+)")
EVAL_SUCCESS = re.compile(r"eval_success_once_mean=([0-9.eE+-]+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=64000, help="Env steps per run (both sides).")
    parser.add_argument("--time-limit-s", type=float, default=1800.0, help="Wall-clock cap per run.")
    parser.add_argument("--sides", nargs="+", choices=["rlvla", "baseline"], default=["rlvla", "baseline"])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / f"{PARITY_PRESET}.yaml")
    parser.add_argument("--env-id", default="PushCube-v1", help="Task of the baseline side.")
    parser.add_argument("--eval-every-steps", type=int, default=4000)
    parser.add_argument("--eval-envs", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("runs/race_maniskill"))
    parser.add_argument("--parallel", action="store_true", help="Run all sides and seeds at once (env-step study).")
    parser.add_argument("--stop-at-success", type=float, default=None, help="End a run once an eval reaches it.")
    parser.add_argument("--baseline-script", type=Path, default=None, help="A user-fetched ppo_cpu.py to run.")
    parser.add_argument("--baseline-python", default=sys.executable, help="Python for --baseline-script.")
    parser.add_argument("--baseline-net", choices=["mlp", "small"], default="mlp",
                        help="Networks of the re-implemented baseline: its own MLPs, or rlvla's small policy (full "
                        "size, shared trunk) to tell the network's part from the rest of the pipeline.")
    parser.add_argument("--run-baseline", action="store_true", help=argparse.SUPPRESS)  # one baseline run (child)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="a.b=c overrides for the rlvla side.")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------------ commands
def rlvla_command(args: argparse.Namespace, seed: int, run_dir: Path) -> list[str]:
    """``rlvla train`` for one seed: the env-step budget becomes runner.max_epochs (steps of one rollout)."""
    from rlvla_cli.config.loader import load_config

    cfg = load_config(args.config, list(args.overrides))
    per_step = cfg.env.train.total_num_envs * cfg.env.train.max_steps_per_rollout_epoch * cfg.env.train.rollout_epoch
    every = max(1, round(args.eval_every_steps / per_step))
    return [sys.executable, "-m", "rlvla_cli", "train", "--config", str(args.config), f"runner.seed={seed}",
            f"runner.output_dir={run_dir}", f"runner.max_epochs={max(1, args.env_steps // per_step)}",
            f"runner.val_check_interval={every}", f"env.eval.total_num_envs={args.eval_envs}",
            "runner.save_interval=-1", *args.overrides]


def baseline_command(args: argparse.Namespace, seed: int, out: Path) -> list[str]:
    if args.baseline_script is not None:
        per_iter = 16 * 50
        return [args.baseline_python, str(args.baseline_script), f"--env_id={args.env_id}", "--num_envs=16",
                "--num_eval_envs=8", "--num-steps=50", "--num-eval-steps=50", "--update_epochs=8",
                "--num_minibatches=8", f"--total_timesteps={args.env_steps}", f"--seed={seed}",
                f"--eval_freq={max(1, args.eval_every_steps // per_iter)}", "--no-capture-video", "--no-save-model"]
    return [sys.executable, __file__, "--run-baseline", f"--seed={seed}", f"--env-id={args.env_id}",
            f"--env-steps={args.env_steps}", f"--eval-every-steps={args.eval_every_steps}",
            f"--eval-envs={args.eval_envs}", f"--out={out}", f"--baseline-net={args.baseline_net}"]


# ------------------------------------------------------------------------------------------------ curves
def rlvla_curve(metrics_file: Path, start: float) -> list[dict]:
    """Eval points ``{env_steps, seconds, success_once}`` from an rlvla metrics.jsonl."""
    points, env_steps = [], 0
    if not metrics_file.is_file():
        return points
    for line in metrics_file.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        env_steps = record.get("perf/total_env_steps", env_steps)
        if record.get("eval/success_once") is not None:
            points.append({"env_steps": int(env_steps or 0), "seconds": record["wall_time"] - start,
                           "success_once": float(record["eval/success_once"])})
    return points


def stdout_curve(lines: list[tuple[float, str]], start: float) -> list[dict]:
    """Eval points from ``(wall time, line)`` pairs of ppo_cpu.py's stdout: ``Epoch: i, global_step=N`` comes
    before the iteration's ``eval_success_once_mean=X`` (the eval runs with the weights reached at N steps)."""
    points, env_steps = [], 0
    for wall, line in lines:
        if match := GLOBAL_STEP.search(line):
            env_steps = int(match.group(1))
        if match := EVAL_SUCCESS.search(line):
            points.append({"env_steps": env_steps, "seconds": wall - start, "success_once": float(match.group(1))})
    return points


def first_reach(points: list[dict], threshold: float) -> dict | None:
    return next((p for p in points if p["success_once"] >= threshold), None)


def summarize(run: dict) -> dict:
    """Per run: env steps / minutes at the first eval >= each threshold, final success, env steps/s."""
    points = run["curve"]
    row = {"side": run["side"], "seed": run["seed"], "final": points[-1]["success_once"] if points else None,
           "env_steps_per_s": run.get("env_steps_per_s")}
    for threshold in THRESHOLDS:
        hit = first_reach(points, threshold)
        row[f"steps@{threshold}"] = None if hit is None else hit["env_steps"]
        row[f"min@{threshold}"] = None if hit is None else round(hit["seconds"] / 60, 2)
    return row


def median_row(rows: list[dict], side: str) -> dict:
    """Median over seeds; a seed that never reached a threshold counts as infinitely late (shown as '>')."""
    mine = [r for r in rows if r["side"] == side]
    out = {"side": side, "seed": "median"}
    for key in [k for k in mine[0] if k not in ("side", "seed")]:
        values = [float("inf") if r[key] is None else r[key] for r in mine]
        value = statistics.median(values)
        out[key] = None if value == float("inf") else round(value, 3)
    return out


# ------------------------------------------------------------------------------------------------ running
def run_one(command: list[str], log: Path, env: dict) -> tuple[subprocess.Popen, list[tuple[float, str]]]:
    """Start ``command``; a thread copies its output to ``log`` and keeps every line with its arrival time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, cwd=REPO)
    lines: list[tuple[float, str]] = []

    def pump() -> None:
        with log.open("w") as handle:
            for line in proc.stdout:
                lines.append((time.time(), line))
                handle.write(line)
                handle.flush()

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def wait(proc: subprocess.Popen, deadline: float, done) -> None:
    """Until ``proc`` exits, or SIGTERM it at ``deadline`` / when ``done()`` (rlvla checkpoints and exits)."""
    while proc.poll() is None:
        if time.time() >= deadline or done():
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            return
        time.sleep(1.0)


def race(args: argparse.Namespace) -> list[dict]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    runs, live = [], []
    for seed in args.seeds:
        for side in args.sides:
            out = args.out / f"{side}_s{seed}"
            command = rlvla_command(args, seed, out / "run") if side == "rlvla" else baseline_command(args, seed, out)
            start = time.time()
            proc, lines = run_one(command, out / "log.txt", env)
            live.append(dict(side=side, seed=seed, out=out, start=start, proc=proc, lines=lines, command=command))
            if not args.parallel:
                runs.append(finish(args, live.pop()))
    return runs + [finish(args, job) for job in live]


def curve_of(args: argparse.Namespace, job: dict) -> list[dict]:
    if job["side"] == "rlvla":
        return rlvla_curve(job["out"] / "run" / "metrics.jsonl", job["start"])
    if args.baseline_script is not None:
        return stdout_curve(list(job["lines"]), job["start"])
    result = job["out"] / "baseline_curve.json"
    return json.loads(result.read_text()) if result.is_file() else []


def finish(args: argparse.Namespace, job: dict) -> dict:
    def reached() -> bool:
        return args.stop_at_success is not None and first_reach(curve_of(args, job), args.stop_at_success) is not None

    wait(job["proc"], job["start"] + args.time_limit_s, reached)
    time.sleep(0.5)  # let the output thread drain
    points = curve_of(args, job)
    last = points[-1] if points else None
    rate = round(last["env_steps"] / last["seconds"], 1) if last and last["seconds"] > 0 else None
    return {"side": job["side"], "seed": job["seed"], "command": job["command"], "returncode": job["proc"].returncode,
            "seconds": round(time.time() - job["start"], 1), "curve": points, "env_steps_per_s": rate}


# ------------------------------------------------------------------------------------------------ report
def print_table(rows: list[dict]) -> None:
    keys = ["side", "seed", *[f"{k}@{t}" for t in THRESHOLDS for k in ("steps", "min")], "final", "env_steps_per_s"]
    print(" | ".join(f"{k:>14}" for k in keys))
    for row in rows:
        print(" | ".join(f"{'>' if row[k] is None else row[k]!s:>14}" for k in keys))


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"rlvla": "tab:blue", "baseline": "tab:orange"}
    for run in runs:
        xs_steps = [p["env_steps"] / 1000 for p in run["curve"]]
        xs_min = [p["seconds"] / 60 for p in run["curve"]]
        ys = [p["success_once"] for p in run["curve"]]
        label = f"{run['side']} seed {run['seed']}"
        axes[0].plot(xs_steps, ys, marker=".", color=colours[run["side"]], alpha=0.7, label=label)
        axes[1].plot(xs_min, ys, marker=".", color=colours[run["side"]], alpha=0.7, label=label)
    for ax, xlabel in zip(axes, ["env steps (k)", "wall-clock minutes"], strict=True):
        ax.axhline(0.8, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("eval success_once")
        ax.set_ylim(0, 1.02)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------------------------------ baseline
# Our re-implementation of the behaviour ppo_cpu.py documents (haosulab/ManiSkill examples/baselines/ppo/), with the
# settings the issue-15 measurement ran. Constants named after its Args fields.
NUM_ENVS, NUM_STEPS, UPDATE_EPOCHS, NUM_MINIBATCHES = 16, 50, 8, 8
GAMMA, GAE_LAMBDA, LEARNING_RATE, TARGET_KL, CLIP_COEF = 0.8, 0.9, 3e-4, 0.1, 0.2
VF_COEF, MAX_GRAD_NORM, INIT_LOG_STD, MAX_EPISODE_STEPS = 0.5, 0.5, -0.5, 50


def mlp(in_dim: int, out_dim: int, out_gain: float):
    """3 x 256 tanh MLP, orthogonal init (gain sqrt 2, last layer ``out_gain``), zero biases."""
    import math

    from torch import nn

    layers, dims = [], [in_dim, 256, 256, 256]
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    layers.append(nn.Linear(256, out_dim))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, out_gain if layer is layers[-1] else math.sqrt(2))
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def make_nets(kind: str, obs_dim: int):
    """-> ``(actor(obs) -> mean [B, 8], critic(obs) -> [B, 1], log_std, parameters)``: the baseline's MLPs, or
    rlvla's small policy (``--baseline-net small``: one shared trunk, value head on it, its own init)."""
    import torch

    if kind == "mlp":
        actor, critic = mlp(obs_dim, 8, 0.01 * 2**0.5), mlp(obs_dim, 1, 1.0)
        log_std = torch.nn.Parameter(torch.full((1, 8), INIT_LOG_STD))
        return actor, critic, log_std, [*actor.parameters(), *critic.parameters(), log_std]
    from rlvla_cli.config.model import SmallModelConfig
    from rlvla_cli.models.small import SmallPolicy

    policy = SmallPolicy(SmallModelConfig(model_type="small", size="full", use_image=False, state_dim=obs_dim,
                                          action_dim=8, num_action_chunks=1, action_squash="clip",
                                          init_log_std=INIT_LOG_STD, add_value_head=True))

    def features(obs):
        inputs = policy._inputs_from_obs({"states": obs, "task_descriptions": ["push the cube to the goal"] * len(obs)})
        return policy._features(inputs)

    def actor(obs):
        return policy.actor(features(obs))

    def critic(obs):
        return policy.value_head(features(obs))

    return actor, critic, policy.log_std, list(policy.parameters())


class SerialEnvs:
    """``n`` single CPU-physics ManiSkill envs stepped in turn; an env whose episode ends (success terminates, or
    the 50-step limit truncates) is reset at once and its last observation returned as ``final``."""

    def __init__(self, env_id: str, n: int, seed: int, end_on_success: bool):
        import gymnasium as gym
        import mani_skill.envs  # noqa: F401 - registers the tasks

        self.envs = [gym.make(env_id, num_envs=1, obs_mode="state", control_mode="pd_joint_delta_pos",
                              sim_backend="cpu", reward_mode="normalized_dense", max_episode_steps=10**9)
                     for _ in range(n)]
        self.seed, self.count, self.end_on_success = seed, 0, end_on_success
        self.steps = [0] * n

    def _reset(self, i: int):
        self.count += 1
        self.steps[i] = 0
        obs, _ = self.envs[i].reset(seed=(self.seed * 1_000_003 + self.count) % 2**31)
        return obs.reshape(-1).float()

    def reset(self):
        import torch

        return torch.stack([self._reset(i) for i in range(len(self.envs))])

    def step(self, actions):
        """-> obs ``[n, D]``, reward ``[n]``, done ``[n]``, success ``[n]``, finals ``{i: obs [D]}``."""
        import torch

        obs, rewards, dones, successes, finals = [], [], [], [], {}
        for i, env in enumerate(self.envs):
            o, r, term, _, info = env.step(actions[i : i + 1])
            self.steps[i] += 1
            success = bool(info["success"].reshape(-1)[0])
            done = (success and self.end_on_success) or bool(term.reshape(-1)[0]) or self.steps[i] >= MAX_EPISODE_STEPS
            o = o.reshape(-1).float()
            if done:
                finals[i] = o
                o = self._reset(i)
            obs.append(o)
            rewards.append(float(r.reshape(-1)[0]))
            dones.append(done)
            successes.append(success)
        return torch.stack(obs), torch.tensor(rewards), torch.tensor(dones), torch.tensor(successes), finals


def finite_horizon_advantages(rewards, values, dones, next_values_real, lam: float, gamma: float):
    """ppo_cpu.py's finite-horizon GAE (its comment: GAE eq. 16 line 1, normalised by the sum of lambda^i), over
    ``[T, n]``: ``dones[t]`` ends the episode after step t, ``next_values_real[t]`` = V(s_{t+1}) or V(final)."""
    import torch

    advantages = torch.zeros_like(rewards)
    lam_sum = reward_sum = value_sum = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        keep = 1.0 - dones[t].float()
        lam_sum = 1.0 + lam * lam_sum * keep
        reward_sum = lam * gamma * reward_sum * keep + lam_sum * rewards[t]
        value_sum = lam * gamma * value_sum * keep + gamma * next_values_real[t]
        advantages[t] = (reward_sum + value_sum) / lam_sum - values[t]
    return advantages


def evaluate(actor, envs: SerialEnvs) -> float:
    """success_once of greedy full episodes (success does not end them) on ``envs``, from the same reset seeds
    every time."""
    import torch

    envs.count = 0
    obs, ever = envs.reset(), torch.zeros(len(envs.envs), dtype=torch.bool)
    for _ in range(MAX_EPISODE_STEPS):
        with torch.no_grad():
            obs, _, _, success, _ = envs.step(actor(obs).clamp(-1.0, 1.0))
        ever |= success
    return float(ever.float().mean())


def ppo_update(actor, critic, log_std, params, optimizer, batch: dict, generator) -> None:
    """8 epochs x 8 minibatches of the clipped PPO loss; stops when a minibatch's approx KL (before its step)
    exceeds TARGET_KL."""
    import torch
    from torch.distributions import Normal

    size = batch["obs"].shape[0]
    for _ in range(UPDATE_EPOCHS):
        order = torch.randperm(size, generator=generator)
        for idx in order.split(size // NUM_MINIBATCHES):
            mean = actor(batch["obs"][idx])
            logprob = Normal(mean, log_std.exp().expand_as(mean)).log_prob(batch["actions"][idx]).sum(1)
            log_ratio = logprob - batch["logprobs"][idx]
            ratio = log_ratio.exp()
            if float(((ratio - 1) - log_ratio).mean()) > TARGET_KL:
                return
            adv = batch["advantages"][idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - CLIP_COEF, 1 + CLIP_COEF)).mean()
            v_loss = 0.5 * ((critic(batch["obs"][idx]).view(-1) - batch["returns"][idx]) ** 2).mean()
            optimizer.zero_grad()
            (pg + VF_COEF * v_loss).backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()


def run_baseline(args: argparse.Namespace) -> int:
    """One baseline run; writes OUT/baseline_curve.json after every eval."""
    import torch
    from torch.distributions import Normal

    torch.manual_seed(args.seed)
    start = time.time()
    envs = SerialEnvs(args.env_id, NUM_ENVS, args.seed, end_on_success=True)
    eval_envs = SerialEnvs(args.env_id, args.eval_envs, 100_000 + args.seed, end_on_success=False)
    obs = envs.reset()
    actor, critic, log_std, params = make_nets(args.baseline_net, obs.shape[1])
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE, eps=1e-5)
    generator, curve, env_steps = torch.Generator().manual_seed(args.seed), [], 0
    iterations = max(1, args.env_steps // (NUM_ENVS * NUM_STEPS))
    eval_every = max(1, args.eval_every_steps // (NUM_ENVS * NUM_STEPS))
    args.out.mkdir(parents=True, exist_ok=True)
    for iteration in range(iterations + 1):
        if iteration % eval_every == 0 or iteration == iterations:
            success = evaluate(actor, eval_envs)
            curve.append({"env_steps": env_steps, "seconds": time.time() - start, "success_once": success})
            (args.out / "baseline_curve.json").write_text(json.dumps(curve))
            print(f"global_step={env_steps} eval_success_once_mean={success}", flush=True)
        if iteration == iterations:
            break
        store = {k: [] for k in ("obs", "actions", "logprobs", "values", "rewards", "dones", "next_real")}
        for _ in range(NUM_STEPS):
            with torch.no_grad():
                mean = actor(obs)
                dist = Normal(mean, log_std.exp().expand_as(mean))
                action = dist.sample()
                value = critic(obs).view(-1)
            next_obs, reward, done, _, finals = envs.step(action.clamp(-1.0, 1.0))
            with torch.no_grad():
                next_real = torch.zeros(NUM_ENVS)
                for i, final in finals.items():  # every done bootstraps V(final obs), as its final_values
                    next_real[i] = critic(final.unsqueeze(0)).view(())
            for key, value_t in (("obs", obs), ("actions", action), ("logprobs", dist.log_prob(action).sum(1)),
                                 ("values", value), ("rewards", reward), ("dones", done), ("next_real", next_real)):
                store[key].append(value_t)
            obs, env_steps = next_obs, env_steps + NUM_ENVS
        batch = {k: torch.stack(v) for k, v in store.items()}
        with torch.no_grad():
            next_values = torch.cat([batch["values"][1:], critic(obs).view(1, -1)])
            real = (1.0 - batch["dones"].float()) * next_values + batch["next_real"]
            advantages = finite_horizon_advantages(batch["rewards"], batch["values"], batch["dones"], real,
                                                   GAE_LAMBDA, GAMMA)
        flat = {"obs": batch["obs"].flatten(0, 1), "actions": batch["actions"].flatten(0, 1),
                "logprobs": batch["logprobs"].flatten(), "advantages": advantages.flatten(),
                "returns": (advantages + batch["values"]).flatten()}
        ppo_update(actor, critic, log_std, params, optimizer, flat, generator)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out, args.config = args.out.resolve(), args.config.resolve()
    if args.run_baseline:
        return run_baseline(args)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = race(args)
    rows = [summarize(run) for run in runs]
    rows += [median_row(rows, side) for side in args.sides if any(r["side"] == side for r in rows)]
    print_table(rows)
    report = {"argv": sys.argv, "machine": machine(), "runs": runs, "table": rows}
    (args.out / "race.json").write_text(json.dumps(report, indent=2))
    plot(runs, args.out / "race.png")
    print(f"wrote {args.out / 'race.json'} and {args.out / 'race.png'}")
    return 0


def machine() -> dict:
    import platform

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_avg": os.getloadavg()}


if __name__ == "__main__":
    raise SystemExit(main())

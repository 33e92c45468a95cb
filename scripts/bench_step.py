"""Seconds per training step of the OpenVLA-OFT quickstart shape (8 envs x 80 steps, LoRA, PPO, everything on
one GPU with offload), broken down as RLinf reports it: sync_weights, generate_rollouts, actor_training.

It drives the real runtime (``Runner.setup`` + ``Runner.train_step``) on ``configs/maniskill_ppo_openvlaoft_
quickstart.yaml``; ``--env builtin`` swaps the simulator for the embedded task (same batch shape, no
ManiSkill install needed), ``--env maniskill`` keeps the recipe's ManiSkill task. The first step (allocator and
kernel warm-up) is reported but left out of the steady-state mean. No checkpoint is written.

Reference: a published RLinf trial of this recipe took 78.8 s per step on six L40 GPUs (7.7 s sync, 38.8 s
rollout, 32.3 s training). Target: <= 20 s per step on one H100.

    python scripts/bench_step.py --steps 3 --out bench_step.json                                  # GPU machine
    python scripts/bench_step.py --size tiny --steps 2 --envs 2 --rollout-steps 16 --out /tmp/s.json  # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "maniskill_ppo_openvlaoft_quickstart.yaml"
RLINF_L40X6 = {"time/step": 78.8, "time/sync_weights": 7.7, "time/generate_rollouts": 38.8,
               "time/actor_training": 32.3}
PHASES = ("time/sync_weights", "time/generate_rollouts", "time/cal_adv_and_returns", "time/actor_training",
          "time/step")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=["builtin", "maniskill"], default="builtin", help="Simulator.")
    parser.add_argument("--size", choices=["tiny", "small", "full"], default="full", help="OFT size preset.")
    parser.add_argument("--steps", type=int, default=3, help="Training steps (the first is warm-up).")
    parser.add_argument("--envs", type=int, default=8, help="env.train.total_num_envs.")
    parser.add_argument("--rollout-steps", type=int, default=80, help="env.train.max_steps_per_rollout_epoch.")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench_step"), help="Run directory (logs).")
    parser.add_argument("--out", type=Path, default=Path("bench_step.json"), help="JSON output.")
    parser.add_argument("--anchor", choices=["full", "tiny", "none"], default="none",
                        help="Also time the plain transformers + peft anchor (scripts/profile_anchor.py) in the same "
                             "run and print it with the physical limit next to rlvla.")
    parser.add_argument("overrides", nargs="*", help="Extra a.b=c config overrides.")
    return parser.parse_args(argv)


def step_config(args):
    """The quickstart config with the benchmark's overrides (and the built-in env when asked)."""
    from rlvla_cli.config.loader import load_config, load_config_dict

    cuda = torch.cuda.is_available()
    overrides = [
        f"env.train.total_num_envs={args.envs}", f"env.train.max_steps_per_rollout_epoch={args.rollout_steps}",
        f"env.train.max_episode_steps={args.rollout_steps}", f"actor.model.size={args.size}",
        "runner.val_check_interval=-1", f"runner.max_steps={args.steps}", f"runner.output_dir={args.run_dir}",
        "runner.logger.logger_backends=[]", "actor.model.model_path=null", "actor.model.unnorm_key=null",
        "actor.model.lora_path=null",  # random weights: nothing to download
    ]
    if not cuda:
        overrides += ["actor.model.precision=fp32", "actor.deepspeed.bf16=false"]
    cfg = load_config(CONFIG, overrides + list(args.overrides))
    if args.env == "builtin":
        data = cfg.model_dump(mode="json")
        image = 128 if args.size == "full" else 32
        for split in ("train", "eval"):
            old = data["env"][split]
            data["env"][split] = {"env_type": "builtin", "total_num_envs": old["total_num_envs"],
                                  "max_episode_steps": old["max_episode_steps"],
                                  "max_steps_per_rollout_epoch": old["max_steps_per_rollout_epoch"],
                                  "rollout_epoch": old["rollout_epoch"], "auto_reset": True,
                                  "init_params": {"image_size": image}}
        cfg = load_config_dict(data, source=f"{CONFIG} (built-in env)")
    return cfg


def run_steps(cfg, steps: int, on_step=lambda rows: None) -> list[dict[str, float]]:
    """``steps`` real training steps; ``on_step(rows)`` after each (so a cut-off run keeps what it measured)."""
    from rlvla_cli.commands.train import hardware_placement
    from rlvla_cli.runtime.runner import Runner

    placement, offload = hardware_placement(cfg)
    runner = Runner(cfg, placement, offload)
    rows = []
    try:
        tick = time.perf_counter()
        runner.setup()
        print(f"setup (model builds, DeepSpeed init, env workers) {time.perf_counter() - tick:.1f}s", flush=True)
        for _ in range(steps):
            metrics = runner.train_step()
            rows.append({k: float(v) for k, v in metrics.items() if k.startswith(("time/", "perf/"))})
            print(" | ".join(f"{k.split('/')[1]} {rows[-1].get(k, 0):.2f}s" for k in PHASES), flush=True)
            on_step(rows)
    finally:
        runner.close()
    return rows


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every phase over the steps after the first (all steps when there is only one)."""
    steady = rows[1:] or rows
    summary = {k: sum(r.get(k, 0.0) for r in steady) / len(steady) for k in PHASES}
    # offload / reload of the collocated models and bookkeeping: the part of the step no phase timer covers
    summary["time/offload_and_other"] = summary["time/step"] - sum(summary[k] for k in PHASES[:-1])
    return summary


def print_table(summary: dict[str, float], device: str, target_s: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"OpenVLA-OFT quickstart step on {device} (steady state) vs RLinf on 6x L40")
    for col in ("phase", "rlvla s", "RLinf s"):
        table.add_column(col, justify="right")
    for key in (*PHASES[:-1], "time/offload_and_other", PHASES[-1]):
        ref = RLINF_L40X6.get(key)
        table.add_row(key.split("/")[1], f"{summary[key]:.2f}", f"{ref:.1f}" if ref else "-")
    Console().print(table)
    verdict = "meets" if summary["time/step"] <= target_s else "misses"
    print(f"step {summary['time/step']:.2f} s {verdict} the {target_s:.0f} s target")


def run_anchor(args, cfg) -> dict:
    """The plain anchor at the step's shape: forwards per rollout = chunk steps, samples = envs x chunk steps."""
    import gc
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profile_anchor import AnchorShape, measure_anchor

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    chunk_steps = args.rollout_steps // cfg.actor.model.num_action_chunks
    shape = AnchorShape.tiny() if args.anchor == "tiny" else AnchorShape()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return measure_anchor(device, shape, batch=args.envs, samples=args.envs * chunk_steps,
                          micro=cfg.actor.micro_batch_size, global_batch=cfg.actor.global_batch_size,
                          forwards=chunk_steps)


def anchor_rows(summary: dict[str, float], anchor: dict) -> list[tuple[str, float, float, float]]:
    """(phase, rlvla s, anchor s, physical limit s) for rollout, training and their sum; the limit is the
    anchor's counted FLOPs / 790 TFLOP/s (its Llama only: rlvla's vision towers and value head come on top)."""
    rollout = ("rollout", summary["time/generate_rollouts"], anchor["rollout_s"], anchor["limit_rollout_s"])
    training = ("training", summary["time/actor_training"], anchor["update_s"], anchor["limit_update_s"])
    step = ("step", summary["time/step"], rollout[2] + training[2], rollout[3] + training[3])
    return [rollout, training, step]


def print_anchor_table(summary: dict[str, float], anchor: dict, device: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rlvla vs plain transformers + peft vs the physical limit on {device} (one run)")
    for col in ("phase", "rlvla s", "plain anchor s", "limit s (790 TFLOP/s)", "rlvla / anchor"):
        table.add_column(col, justify="right")
    for phase, ours, plain, limit in anchor_rows(summary, anchor):
        table.add_row(phase, f"{ours:.2f}", f"{plain:.2f}", f"{limit:.2f}", f"{ours / plain:.2f}x")
    Console().print(table)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = step_config(args)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    payload = {"date": time.strftime("%Y-%m-%d"), "device": device, "env": args.env, "size": args.size,
               "envs": args.envs, "rollout_steps": args.rollout_steps, "micro_batch": cfg.actor.micro_batch_size,
               "global_batch": cfg.actor.global_batch_size, "rlinf_l40x6": RLINF_L40X6, "target_s": 20.0,
               "args": vars(args) | {"out": str(args.out), "run_dir": str(args.run_dir)}}

    def save(rows: list[dict[str, float]]) -> None:
        payload.update(steps=rows, steady_state=summarise(rows))
        args.out.write_text(json.dumps(payload, indent=2))

    run_steps(cfg, args.steps, on_step=save)
    payload["micro_batch"] = cfg.actor.micro_batch_size  # `auto` resolved by the planner at setup
    payload["gradient_checkpointing"] = cfg.actor.model.gradient_checkpointing
    print_table(payload["steady_state"], device, 20.0)
    if args.anchor != "none":
        payload["anchor"] = run_anchor(args, cfg)
        save(payload["steps"])
        print_anchor_table(payload["steady_state"], payload["anchor"], device)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Speed and memory of the real PPO update (DeepSpeed `Trainer` + the algorithm core), micro-batch 1..N.

For each model the policy is built once (random weights), a rollout of ``--samples`` observations is taken with
``predict`` (so ``forward_inputs`` are what training really sees), advantages come from GAE on random rewards,
and one ``Trainer.train`` call (one optimizer step over ``samples / micro`` micro-batches) is timed per
micro-batch size. Reported per row: seconds per update, samples/s, transformer tokens/s (tokens of every
trained stack x passes, from the planner's model profile), FLOPs counted with ``torch.utils.flop_counter``
(with gradient checkpointing the recomputed forward is counted too: hardware FLOPs), MFU against the GPU's
dense bf16 peak, and peak memory next to the planner's prediction for a trainer rank (context excluded).
``--profile`` adds the top kernels of one update (torch.profiler) for the largest micro-batch.

    python scripts/bench_train.py --size full --micro-batches 1,2,4,8,16 --out bench_train.json   # GPU machine
    python scripts/bench_train.py --size tiny --device cpu --micro-batches 1,2 --samples 4         # smoke test
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import MODELS, PEAK_BF16_FLOPS, build, checked_args, observations, timed  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="openvla_oft,pi0", help=f"Comma list of {sorted(MODELS)}.")
    parser.add_argument("--size", default="full", choices=["tiny", "small", "full"], help="Size preset.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--micro-batches", default="1,2,4,8,16", help="Micro-batch sizes to time.")
    parser.add_argument("--samples", type=int, default=16, help="Samples per update (the global batch).")
    parser.add_argument("--zero-stage", type=int, default=0, choices=[0, 1, 2, 3], help="DeepSpeed ZeRO stage.")
    parser.add_argument("--grad-ckpt", choices=["preset", "on", "off"], default="preset",
                        help="Gradient checkpointing: the benchmark preset's choice, or forced on / off.")
    parser.add_argument("--repeats", type=int, default=2, help="Timed updates per micro-batch (after a warm-up).")
    parser.add_argument("--profile", action="store_true", help="Top kernels of one update at the largest micro.")
    parser.add_argument("--out", type=Path, default=Path("bench_train.json"), help="JSON output.")
    return parser.parse_args(argv)


def tokens_per_sample(model_cfg) -> int:
    """Tokens through every trained transformer stack per sample (x forward passes), from the planner."""
    from rlvla_cli.placement.profiles import model_profile

    return sum(g.tokens * g.passes for g in model_profile(model_cfg).grad_stacks)


def predicted_training_bytes(model_cfg, micro: int, zero_stage: int) -> int:
    """The planner's training-phase bytes of one trainer rank (weights, grads, optimizer, activations)."""
    from rlvla_cli.placement.estimate import MemorySettings, actor_process_memory
    from rlvla_cli.placement.profiles import model_profile

    settings = MemorySettings(micro_batch_size=micro, zero_stage=zero_stage, mixed_precision=True,
                              checkpointing=bool(model_cfg.gradient_checkpointing))
    state, train_only = actor_process_memory(model_profile(model_cfg), settings, dp_size=1)
    return sum(state.values()) + sum(train_only.values())


def rollout_batch(policy, samples: int, image_size: int, wrist: bool):
    """A one-step rollout of ``samples`` envs with random rewards, advantages filled by GAE."""
    from rlvla_cli.algorithms import compute_advantages
    from rlvla_cli.algorithms.batch import RolloutBatch
    from rlvla_cli.config.algorithm import AlgorithmConfig

    policy.eval()
    with torch.no_grad():
        out = policy.predict(observations(samples, image_size, wrist), mode="train")
    policy.train()
    chunks = out.actions.shape[1]
    values = out.values if out.values is not None else torch.zeros(samples, 1)
    batch = RolloutBatch(
        forward_inputs={k: v.unsqueeze(0).cpu() for k, v in out.forward_inputs.items()},
        old_logprobs=out.logprobs.unsqueeze(0).float().cpu(),
        rewards=torch.rand(1, samples, chunks),
        terminations=torch.zeros(1, samples, chunks, dtype=torch.bool),
        truncations=torch.zeros(1, samples, chunks, dtype=torch.bool),
        loss_mask=torch.ones(1, samples, dtype=torch.bool),
        old_values=values.unsqueeze(0).float().cpu(),
        bootstrap_values=torch.zeros(1, samples, values.shape[-1]),
        last_values=torch.zeros(samples, values.shape[-1]),
    ).validate()
    algo = AlgorithmConfig(update_epoch=1)
    compute_advantages(batch, algo)
    return batch, algo


def make_trainer(policy, model_cfg, algo, args):
    from rlvla_cli.config.actor import ActorConfig
    from rlvla_cli.runtime.launcher import init_distributed
    from rlvla_cli.runtime.trainer import Trainer

    init_distributed(0, 1, args.device)
    actor_cfg = ActorConfig.model_validate({
        "micro_batch_size": 1, "global_batch_size": args.samples,
        "optim": {"lr": 1e-6, "value_lr": 1e-6, "clip_grad": 1.0},
        "deepspeed": {"zero_stage": args.zero_stage, "bf16": args.device.startswith("cuda")},
        "model": model_cfg.model_dump(),
    })
    return Trainer(policy, actor_cfg, algo, dp_size=1, device=args.device, total_optimizer_steps=10**6)


def top_kernels(trainer, batch, device: str, limit: int = 15) -> list[dict]:
    """The ``limit`` ops with the most self device time (CPU time on a CPU) during one update."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        trainer.train(batch, global_step=0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    key = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key, 0) for e in events) or 1
    return [{"op": e.key, "calls": e.count, "self_ms": getattr(e, key, 0) / 1e3,
             "share": getattr(e, key, 0) / total} for e in events[:limit]]


def bench_model(name: str, args, on_row=lambda row: None) -> dict:
    """Every micro-batch size of ``name``; ``on_row(row)`` after each (a cut-off run keeps what it measured)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    overrides = {} if args.grad_ckpt == "preset" else {"gradient_checkpointing": args.grad_ckpt == "on"}
    policy, model_cfg = build(name, args.size, args.device, **overrides)
    image = 224 if args.size == "full" else 28
    batch, algo = rollout_batch(policy, args.samples, image, wrist=name == "pi0")
    trainer = make_trainer(policy, model_cfg, algo, args)
    cuda = args.device.startswith("cuda")
    peak_flops = next((v for k, v in PEAK_BF16_FLOPS.items() if cuda and k in torch.cuda.get_device_name()), None)
    tokens = tokens_per_sample(model_cfg)
    row = {"model": name, "size": args.size, "params": sum(p.numel() for p in policy.parameters()),
           "trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
           "gradient_checkpointing": bool(model_cfg.gradient_checkpointing), "tokens_per_sample": tokens,
           "samples_per_update": args.samples, "micro": []}
    for micro in args.micro_batches:
        if args.samples % micro:
            continue
        trainer.actor_cfg = trainer.actor_cfg.model_copy(update={"micro_batch_size": micro})
        entry = {"micro_batch": micro, "predicted_gib": predicted_training_bytes(model_cfg, micro, args.zero_stage)
                 / 2**30}
        try:
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            counter = FlopCounterMode(display=False)
            # the math backend turns attention into matmuls the counter knows; the timed runs use fused kernels
            with counter, sdpa_kernel(SDPBackend.MATH):
                trainer.train(batch, global_step=0)
            seconds = timed(lambda: trainer.train(batch, global_step=0), args.repeats, args.device)
        except torch.OutOfMemoryError:
            entry["oom"] = True
            row["micro"].append(entry)
            torch.cuda.empty_cache()
            break
        flops = counter.get_total_flops()
        entry.update({
            "update_s": seconds, "samples_per_s": args.samples / seconds,
            "tokens_per_s": args.samples * tokens / seconds,
            "flops_per_update": flops, "tflops_per_s": flops / seconds / 1e12,
            "mfu": flops / seconds / peak_flops if peak_flops else None,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        })
        if entry["peak_gib"]:
            entry["measured_over_predicted"] = entry["peak_gib"] / entry["predicted_gib"]
        row["micro"].append(entry)
        on_row(row)
    done = [m for m in row["micro"] if not m.get("oom")]
    if args.profile and done:
        trainer.actor_cfg = trainer.actor_cfg.model_copy(update={"micro_batch_size": done[-1]["micro_batch"]})
        row["profile"] = {"micro_batch": done[-1]["micro_batch"], "top": top_kernels(trainer, batch, args.device)}
    return row


def print_table(rows: list[dict], device: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"PPO update speed on {device} (DeepSpeed Trainer; random weights)")
    for col in ("model", "micro", "update s", "samples/s", "tokens/s", "TFLOP/s", "MFU", "peak GiB", "predicted GiB"):
        table.add_column(col, justify="right")
    for row in rows:
        for i, m in enumerate(row["micro"]):
            label = f"{row['model']} ({row['trainable'] / 1e6:.0f}M trainable)" if i == 0 else ""
            if m.get("oom"):
                table.add_row(label, str(m["micro_batch"]), "OOM", "", "", "", "", "", f"{m['predicted_gib']:.1f}")
                continue
            table.add_row(label, str(m["micro_batch"]), f"{m['update_s']:.3f}", f"{m['samples_per_s']:.1f}",
                          f"{m['tokens_per_s']:.0f}", f"{m['tflops_per_s']:.1f}",
                          f"{m['mfu']:.1%}" if m["mfu"] else "-",
                          f"{m['peak_gib']:.1f}" if m["peak_gib"] else "-", f"{m['predicted_gib']:.1f}")
    Console().print(table)
    for row in rows:
        if "profile" in row:
            top = Table(title=f"{row['model']}: top ops of one update (micro {row['profile']['micro_batch']})")
            for col in ("op", "calls", "self ms", "share"):
                top.add_column(col, justify="right")
            for op in row["profile"]["top"]:
                top.add_row(op["op"][:60], str(op["calls"]), f"{op['self_ms']:.1f}", f"{op['share']:.1%}")
            Console().print(top)


def main(argv=None) -> int:
    from rlvla_cli.errors import UserError

    try:
        args = checked_args(parse_args(argv), micro_batches=1)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    rows: list[dict] = []

    def save(*partial: dict) -> None:
        payload = {"date": time.strftime("%Y-%m-%d"), "device": device, "args": vars(args) | {"out": str(args.out)},
                   "rows": [*rows, *partial]}
        args.out.write_text(json.dumps(payload, indent=2))

    for name in args.models:
        torch.manual_seed(0)
        rows.append(bench_model(name, args, on_row=save))
        save()
        gc.collect()  # the engine holds reference cycles: free the model before the next one is built
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print_table(rows, device)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Rollout and training speed of the VLA architectures (random weights): latency and actions/s of `predict`
at several batch sizes, and samples/s, FLOP/s and MFU of one training step (evaluate + backward + AdamW).

FLOPs are counted, not estimated: one step runs under ``torch.utils.flop_counter.FlopCounterMode``.

    python scripts/bench_models.py --size full --device cuda --out bench_models.json        # GPU machine
    python scripts/bench_models.py --size tiny --device cpu --batches 2 --train-batch 2     # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40": 181e12}  # dense bf16, spec sheets

MODELS = {
    "openvla": dict(model_type="openvla", is_lora=True, lora_rank=32, gradient_checkpointing=True),
    "openvla_oft": dict(model_type="openvla_oft", is_lora=True, lora_rank=32, num_action_chunks=8,
                        gradient_checkpointing=True),
    "pi0": dict(model_type="openpi", num_action_chunks=5, num_images=2, noise_method="flow_noise"),
}


def int_list(text: str, key: str, low: int = 1) -> list[int]:
    """A comma list of integers >= ``low`` from flag ``key``; anything else is a ``UserError`` naming the flag."""
    from rlvla_cli.errors import UserError

    try:
        values = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise UserError(f"{text!r} is not a comma list of integers", key=key, fix="e.g. 1,2") from err
    if min(values) < low:
        raise UserError(f"{values} has a value below {low}", key=key, fix=f"use values of at least {low}")
    return values


def model_list(text: str, known=tuple(MODELS)) -> list[str]:
    """The ``--models`` comma list; a name outside ``known`` is a ``UserError`` (before minutes of model builds)."""
    from rlvla_cli.errors import UserError

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise UserError(f"unknown model(s) {unknown or names}", key="--models",
                        fix=f"use a comma list of {list(known)}")
    return names


def checked_args(args: argparse.Namespace, **lists: int) -> argparse.Namespace:
    """``args`` with ``--models`` and the integer-list flags ``lists`` (attribute -> lowest value) parsed."""
    args.models = model_list(args.models)
    for key, low in lists.items():
        setattr(args, key, int_list(getattr(args, key), "--" + key.replace("_", "-"), low))
    return args


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="openvla_oft,pi0", help=f"Comma list of {sorted(MODELS)}.")
    parser.add_argument("--size", default="full", choices=["tiny", "small", "full"], help="Size preset.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="8,64,256", help="Rollout batch sizes.")
    parser.add_argument("--train-batch", type=int, default=8, help="Micro batch of the training step.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed repetitions (after one warm-up).")
    parser.add_argument("--out", type=Path, default=Path("bench_models.json"), help="JSON output.")
    return parser.parse_args(argv)


def build(name: str, size: str, device: str, **overrides):
    """(policy, model config) of benchmark preset ``name`` at ``size``; ``overrides`` replace model keys."""
    from pydantic import TypeAdapter

    from rlvla_cli.config.model import ModelConfig
    from rlvla_cli.models.registry import build_policy

    precision = "bf16" if device.startswith("cuda") else "fp32"
    spec = {"size": size, "precision": precision, "action_dim": 7, "add_value_head": True, **MODELS[name], **overrides}
    if name != "pi0":
        spec["image_size"] = 224 if size == "full" else 28
    cfg = TypeAdapter(ModelConfig).validate_python(spec)
    return build_policy(cfg, device=device), cfg


def observations(batch: int, image_size: int, wrist: bool) -> dict:
    obs = {
        "main_images": torch.randint(0, 256, (batch, image_size, image_size, 3), dtype=torch.uint8),
        "states": torch.randn(batch, 8),
        "task_descriptions": ["put the carrot on the plate"] * batch,
    }
    if wrist:
        obs["wrist_images"] = obs["main_images"].clone()
    return obs


def timed(fn, repeats: int, device: str) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def train_step(policy, optimizer, forward_inputs):
    """What the trainer does per micro-batch: recompute log-probs / values, backward, AdamW."""
    scored = policy.evaluate(forward_inputs)
    loss = -scored.logprobs.float().mean() + (scored.values.float().pow(2).mean() if scored.values is not None else 0)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def bench_model(name: str, args) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    policy, cfg = build(name, args.size, args.device)
    image = 224 if args.size == "full" else 28
    wrist = name == "pi0"
    params = sum(p.numel() for p in policy.parameters())
    trainable = [p for p in policy.parameters() if p.requires_grad]
    row = {"model": name, "size": args.size, "params": params, "trainable": sum(p.numel() for p in trainable),
           "rollout": []}
    policy.eval()
    for batch in args.batches:
        obs = observations(batch, image, wrist)
        seconds = timed(lambda obs=obs: policy.predict(obs, mode="train"), args.repeats, args.device)
        actions = batch * cfg.num_action_chunks
        row["rollout"].append({"batch": batch, "latency_s": seconds, "actions_per_s": actions / seconds})
    policy.train()
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    inputs = policy.predict(observations(args.train_batch, image, wrist), mode="train").forward_inputs
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    counter = FlopCounterMode(display=False)
    # the math backend decomposes attention into matmuls the counter understands (its fused-kernel formulas
    # reject grouped-query attention, which pi0's Gemma uses); the timed steps below use the fast kernels
    with counter, sdpa_kernel(SDPBackend.MATH):
        train_step(policy, optimizer, inputs)
    flops = counter.get_total_flops()
    seconds = timed(lambda: train_step(policy, optimizer, inputs), args.repeats, args.device)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if args.device.startswith("cuda")
                 and k in torch.cuda.get_device_name()), None)
    row["train"] = {
        "micro_batch": args.train_batch, "step_s": seconds, "samples_per_s": args.train_batch / seconds,
        "flops_per_step": flops, "tflops_per_s": flops / seconds / 1e12,
        "mfu": flops / seconds / peak if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None,
    }
    return row


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="VLA speed (random weights; train step = evaluate + backward + AdamW)")
    for col in ("model", "params", "batch", "predict s", "actions/s", "train step s", "TFLOP/s", "MFU", "peak GiB"):
        table.add_column(col, justify="right")
    for row in rows:
        t = row["train"]
        for i, r in enumerate(row["rollout"]):
            first = i == 0
            table.add_row(
                row["model"] if first else "", f"{row['params'] / 1e9:.2f}B" if first else "", str(r["batch"]),
                f"{r['latency_s']:.3f}", f"{r['actions_per_s']:.0f}",
                f"{t['step_s']:.3f} (b{t['micro_batch']})" if first else "",
                f"{t['tflops_per_s']:.1f}" if first else "",
                f"{t['mfu']:.1%}" if first and t["mfu"] else "", f"{t['peak_memory_gib']:.1f}" if first and
                t["peak_memory_gib"] else "",
            )
    Console().print(table)


def main(argv=None) -> int:
    from rlvla_cli.errors import UserError

    try:
        args = checked_args(parse_args(argv), batches=1)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    rows = []
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    for name in args.models:
        rows.append(bench_model(name, args))
        payload = {"date": time.strftime("%Y-%m-%d"), "device": device, "args": vars(args) | {"out": str(args.out)},
                   "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2))  # after every model: a later failure keeps these
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print_table(rows)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

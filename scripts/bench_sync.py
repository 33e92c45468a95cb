"""Trainer -> rollout weight sync for a Llama-2-7B-shaped parameter set (what OpenVLA / OFT carry), in bf16.

One GPU (``--gpus 1``): ``WeightSync`` between two copies on the same device, as the runtime uses it:
``share`` (same device and dtype: the rollout copy points at the trainer's storage) and ``copy`` (bucketed
copies, what a different dtype or a ZeRO-3 source needs), plus a plain ``copy_`` of one flat buffer of the
same size as the device's own bandwidth reference. Target: <= 0.1 s.

Two GPUs (``--gpus 2``, one process per GPU, NCCL): ``broadcast_weights`` (bucketed broadcast of every tensor)
against one ``torch.distributed.broadcast`` of a flat buffer of the same bytes, measured in the same run.
Target: >= 80% of that bandwidth. On a CPU both modes run with gloo (a smoke test).

    python scripts/bench_sync.py --gpus 1 --out bench_sync_1gpu.json       # one GPU
    python scripts/bench_sync.py --gpus 2 --out bench_sync_2gpu.json       # two GPUs
    python scripts/bench_sync.py --device cpu --gpus 2 --layers 2 --hidden 256 --out /tmp/sync.json   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import timed  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=1, choices=[1, 2], help="1: same-device sync; 2: broadcast.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=32, help="Transformer layers (Llama-2-7B: 32).")
    parser.add_argument("--hidden", type=int, default=4096, help="Hidden size (Llama-2-7B: 4096).")
    parser.add_argument("--vocab", type=int, default=32064, help="Vocabulary (OpenVLA: 32064).")
    parser.add_argument("--bucket-mib", type=int, default=256, help="Bucket size of the bucketed paths.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed repetitions (after one warm-up).")
    parser.add_argument("--out", type=Path, default=Path("bench_sync.json"), help="JSON output.")
    return parser.parse_args(argv)


class LlamaShapedWeights(torch.nn.Module):
    """Parameters with Llama's names and shapes (no forward): embeddings, per-layer attention / SwiGLU MLP /
    norms, final norm and LM head. ``intermediate`` defaults to Llama-2's 11008 scaled with ``hidden``."""

    def __init__(self, layers: int, hidden: int, vocab: int, device: str, dtype: torch.dtype):
        super().__init__()
        inter = hidden * 11008 // 4096

        def param(*shape: int) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.empty(*shape, device=device, dtype=dtype).normal_(0, 0.02))

        self.embed = param(vocab, hidden)
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            layer = torch.nn.Module()
            for name in ("q", "k", "v", "o"):
                layer.register_parameter(name, param(hidden, hidden))
            layer.gate, layer.up, layer.down = param(inter, hidden), param(inter, hidden), param(hidden, inter)
            layer.norm1, layer.norm2 = param(hidden), param(hidden)
            self.layers.append(layer)
        self.norm = param(hidden)
        self.head = param(vocab, hidden)


def nbytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def bench_one_device(args) -> dict:
    from rlvla_cli.runtime.weight_sync import WeightSync

    torch.manual_seed(0)
    source = LlamaShapedWeights(args.layers, args.hidden, args.vocab, args.device, torch.bfloat16)
    target = LlamaShapedWeights(args.layers, args.hidden, args.vocab, args.device, torch.bfloat16)
    size = nbytes(source)
    share = WeightSync(source, target, bucket_bytes=args.bucket_mib << 20)
    assert share.mode == "share"
    share_s = timed(share.sync, args.repeats, args.device)
    assert all(t.data_ptr() == s.data_ptr() for s, t in zip(source.parameters(), target.parameters(), strict=True))
    target = LlamaShapedWeights(args.layers, args.hidden, args.vocab, args.device, torch.bfloat16)
    copy = WeightSync(source, target, bucket_bytes=args.bucket_mib << 20)
    copy.mode = "copy"  # what a dtype change or a ZeRO-3 source forces
    copy_s = timed(copy.sync, args.repeats, args.device)
    assert all(torch.equal(s, t) for s, t in zip(source.parameters(), target.parameters(), strict=True))
    flat_src = torch.empty(size // 2, dtype=torch.bfloat16, device=args.device)
    flat_dst = torch.empty_like(flat_src)
    raw_s = timed(lambda: flat_dst.copy_(flat_src), args.repeats, args.device)
    return {"bytes": size, "params": size // 2, "share_s": share_s, "copy_s": copy_s, "raw_copy_s": raw_s,
            "copy_gb_per_s": size / copy_s / 1e9, "raw_copy_gb_per_s": size / raw_s / 1e9,
            "target_s": 0.1, "share_meets_target": share_s <= 0.1, "copy_meets_target": copy_s <= 0.1}


def _broadcast_rank(rank: int, args, port: int, results) -> None:
    from rlvla_cli.runtime.launcher import init_distributed, shutdown_distributed
    from rlvla_cli.runtime.weight_sync import broadcast_weights

    os.environ["MASTER_PORT"] = str(port)
    device = f"cuda:{rank}" if args.device.startswith("cuda") else "cpu"
    init_distributed(rank, 2, device, master_port=port)
    import torch.distributed as dist

    torch.manual_seed(rank)  # different weights per rank: the broadcast must make them equal
    module = LlamaShapedWeights(args.layers, args.hidden, args.vocab, device, torch.bfloat16)
    size = nbytes(module)
    flat = torch.empty(size // 2, dtype=torch.bfloat16, device=device)

    def bucketed():
        broadcast_weights(module, src=0, bucket_bytes=args.bucket_mib << 20, version=1)

    def raw():
        dist.broadcast(flat, src=0)

    def synced(fn):
        def run():
            fn()
            dist.barrier()
        return run

    bucketed_s = timed(synced(bucketed), args.repeats, device)
    raw_s = timed(synced(raw), args.repeats, device)
    with torch.no_grad():
        checksum = torch.tensor([float(sum(p.float().sum() for p in module.parameters()))], device=device)
    gathered = [torch.zeros_like(checksum) for _ in range(2)]
    dist.all_gather(gathered, checksum)
    if rank == 0:
        results.put({"bytes": size, "params": size // 2, "broadcast_weights_s": bucketed_s, "raw_broadcast_s": raw_s,
                     "broadcast_weights_gb_per_s": size / bucketed_s / 1e9, "raw_gb_per_s": size / raw_s / 1e9,
                     "fraction_of_raw": raw_s / bucketed_s, "target_fraction": 0.8,
                     "ranks_equal": bool(torch.equal(gathered[0], gathered[1]))})
    shutdown_distributed()


def bench_two_ranks(args) -> dict:
    from rlvla_cli.runtime.launcher import free_port

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_broadcast_rank, args=(rank, args, port, results)) for rank in range(2)]
    for proc in procs:
        proc.start()
    result = results.get(timeout=1800)
    for proc in procs:
        proc.join(timeout=60)
    if any(proc.exitcode for proc in procs):
        raise RuntimeError(f"a broadcast rank failed: exit codes {[p.exitcode for p in procs]}")
    return result


def print_table(payload: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    r = payload["result"]
    table = Table(title=f"weight sync, {r['params'] / 1e9:.2f}B bf16 params ({r['bytes'] / 2**30:.1f} GiB), "
                        f"{payload['device']}")
    for col in ("path", "seconds", "GB/s", "target"):
        table.add_column(col, justify="right")
    if payload["gpus"] == 1:
        table.add_row("WeightSync share (same device)", f"{r['share_s']:.4f}", "-", "<= 0.1 s")
        table.add_row("WeightSync copy (bucketed)", f"{r['copy_s']:.4f}", f"{r['copy_gb_per_s']:.0f}", "<= 0.1 s")
        table.add_row("flat copy_ (reference)", f"{r['raw_copy_s']:.4f}", f"{r['raw_copy_gb_per_s']:.0f}", "")
    else:
        table.add_row("broadcast_weights (bucketed)", f"{r['broadcast_weights_s']:.4f}",
                      f"{r['broadcast_weights_gb_per_s']:.1f}", f"{r['fraction_of_raw']:.0%} of raw (>= 80%)")
        table.add_row("dist.broadcast flat (reference)", f"{r['raw_broadcast_s']:.4f}", f"{r['raw_gb_per_s']:.1f}", "")
    Console().print(table)


def main(argv=None) -> int:
    args = parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and torch.cuda.device_count() < args.gpus:
        print(f"bench_sync: `--gpus {args.gpus}` needs {args.gpus} CUDA devices but {torch.cuda.device_count()} "
              "are visible. Fix: run it on a machine with that many GPUs, or pass --gpus 1.", file=sys.stderr)
        return 2
    result = bench_one_device(args) if args.gpus == 1 else bench_two_ranks(args)
    device = torch.cuda.get_device_name() if cuda else "cpu"
    payload = {"date": time.strftime("%Y-%m-%d"), "device": device, "gpus": args.gpus,
               "args": vars(args) | {"out": str(args.out)}, "result": result}
    args.out.write_text(json.dumps(payload, indent=2))
    print_table(payload)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

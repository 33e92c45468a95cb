"""Where the OpenVLA-OFT quickstart step's time goes (issue 18): torch.profiler tables of the rollout and the update
phases of one real ``Runner.train_step``, next to the plain transformers + peft anchor (``profile_anchor.py``).

It builds the same runtime as ``bench_step.py`` (its ``step_config``: built-in env, 8 envs x 80 steps, random
weights), runs ``--warmup`` steps, then one step with each phase under its own ``torch.profiler`` (the rollout's
``Runner._collect`` and the trainer's ``TrainerGroup.train``), then one step under ``FlopCounterMode`` (the FLOPs
each phase really executes, attention as math) for the physical limit (FLOPs / 790 TFLOP/s). The policy's parts
(vision towers, projector, Llama stack, value head, lm_head rows) are annotated with ``record_function`` so the
tables show the forward time of each.

Written to ``--out-dir``: ``<label>.json`` (summary: per phase wall s, GPU-busy s, host-sync counts, top ops,
per-part forward time; anchor numbers), ``<label>_rollout.txt``, ``<label>_training.txt``,
``<label>_anchor_update.txt`` (key_averages tables).

    python scripts/profile_step.py --out-dir docs/measurements --label profile_step_h200 \
        actor.micro_batch_size=8 actor.model.gradient_checkpointing=false                      # GPU machine
    python scripts/profile_step.py --size tiny --envs 2 --rollout-steps 16 --out-dir /tmp/p --anchor tiny  # CPU
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_anchor import LIMIT_FLOPS  # noqa: E402

# host <-> device synchronisation points and copies (what a step should have few of)
SYNC_OPS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpyAsync",
            "aten::_local_scalar_dense", "aten::item", "aten::nonzero", "Memcpy HtoD (Pageable -> Device)",
            "Memcpy DtoH (Device -> Pageable)", "Memcpy HtoD (Pinned -> Device)", "Memcpy DtoD (Device -> Device)")
PARTS = {  # record_function label -> attribute path below the policy (missing ones are skipped)
    "part/vision_backbone": "vla.vision_backbone",
    "part/projector": "vla.projector",
    "part/llama_stack": "vla.language_model.model",
    "part/value_head": "value_head",
    "part/proprio_projector": "proprio_projector",
}


def _cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def profiled(fn, device: str, *args, **kwargs):
    """(result of ``fn``, the torch.profiler of the call) with CPU (+ CUDA) activities."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if _cuda(device) else [])
    with profile(activities=activities) as prof:
        result = fn(*args, **kwargs)
        if _cuda(device):
            torch.cuda.synchronize()
    return result, prof


def _self_device_us(event) -> float:
    return float(getattr(event, "self_device_time_total", 0) or getattr(event, "self_cuda_time_total", 0) or 0)


def _device_us(event) -> float:
    return float(getattr(event, "device_time_total", 0) or getattr(event, "cuda_time_total", 0) or 0)


def write_table(prof, path: Path, device: str, title: str, rows: int = 40) -> dict:
    """Write the key_averages tables (by self device time, and by self CPU time) to ``path``; return a summary:
    GPU-busy seconds (sum of kernel self time), CPU-op seconds, counts of the sync / copy ops, top ops, parts."""
    averages = prof.key_averages()
    cuda = _cuda(device)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    text = [f"# {title}", "", "## by self device time" if cuda else "## by self CPU time",
            averages.table(sort_by=sort, row_limit=rows, max_name_column_width=70)]
    if cuda:
        text += ["", "## by self CPU time", averages.table(sort_by="self_cpu_time_total", row_limit=25,
                                                             max_name_column_width=70)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text))
    ops = [e for e in averages if not e.key.startswith("part/")]
    key = _self_device_us if cuda else (lambda e: float(e.self_cpu_time_total))
    top = sorted(ops, key=key, reverse=True)[:25]
    # device-side events only (kernels, memcpys): an aten op's self device time repeats its kernels' time
    busy_us = sum(_self_device_us(e) for e in ops if str(getattr(e, "device_type", "")).endswith("CUDA"))
    return {
        "table": path.name,
        "gpu_busy_s": busy_us / 1e6 if cuda else None,
        "cpu_self_s": sum(float(e.self_cpu_time_total) for e in ops) / 1e6,
        "syncs": {e.key: e.count for e in averages if e.key in SYNC_OPS},
        "top": [{"op": e.key[:90], "calls": e.count, "self_ms": key(e) / 1e3} for e in top],
        "parts": {e.key: {"calls": e.count, "cpu_ms": e.cpu_time_total / 1e3, "device_ms": _device_us(e) / 1e3}
                  for e in averages if e.key.startswith("part/")},
    }


def annotate_parts(policy: torch.nn.Module) -> None:
    """Run each part's forward inside ``record_function(label)`` (forward only; backward kernels are not
    attributed)."""
    for label, path in PARTS.items():
        module = policy
        for name in path.split("."):
            module = getattr(module, name, None)
            if module is None:
                break
        if module is None or not isinstance(module, torch.nn.Module):
            continue
        inner = module.forward

        @functools.wraps(inner)
        def wrapped(*args, _inner=inner, _label=label, **kwargs):
            with torch.profiler.record_function(_label):
                return _inner(*args, **kwargs)

        module.forward = wrapped


class PhaseHooks:
    """Wraps ``runner._collect`` and ``runner.group.train``: in ``mode`` "profile" each phase runs under its own
    profiler, in "flops" under a FlopCounterMode; "off" passes through."""

    def __init__(self, runner, device: str):
        self.runner, self.device, self.mode = runner, device, "off"
        self.profiles: dict[str, object] = {}
        self.flops: dict[str, int] = {}
        self.walls: dict[str, float] = {}
        runner._collect = self._wrap("rollout", runner._collect)
        runner.group.train = self._wrap("training", runner.group.train)

    def _wrap(self, phase: str, fn):
        def wrapped(*args, **kwargs):
            if self.mode == "profile":
                start = time.perf_counter()
                result, self.profiles[phase] = profiled(fn, self.device, *args, **kwargs)
                self.walls[phase] = time.perf_counter() - start
                return result
            if self.mode == "flops":
                from torch.nn.attention import SDPBackend, sdpa_kernel
                from torch.utils.flop_counter import FlopCounterMode

                counter = FlopCounterMode(display=False)
                with counter, sdpa_kernel(SDPBackend.MATH):
                    result = fn(*args, **kwargs)
                self.flops[phase] = counter.get_total_flops()
                return result
            return fn(*args, **kwargs)

        return wrapped


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small", "full"], default="full", help="OFT size preset.")
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--rollout-steps", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=2, help="Unprofiled steps first (the first is warm-up).")
    parser.add_argument("--anchor", choices=["full", "tiny", "none"], default="full", help="Anchor shape.")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/profile_step"))
    parser.add_argument("--out-dir", type=Path, default=Path("docs/measurements"))
    parser.add_argument("--label", default="profile_step")
    parser.add_argument("overrides", nargs="*", help="Extra a.b=c config overrides.")
    return parser.parse_args(argv)


def profile_runner(args, payload: dict, save) -> None:
    from bench_step import step_config

    from rlvla_cli.commands.train import hardware_placement
    from rlvla_cli.runtime.runner import Runner

    bench_args = argparse.Namespace(env="builtin", size=args.size, steps=args.warmup + 2, envs=args.envs,
                                    rollout_steps=args.rollout_steps, run_dir=args.run_dir, overrides=args.overrides)
    cfg = step_config(bench_args)
    placement, offload = hardware_placement(cfg)
    device = placement.components["actor"].processes[0].device
    payload.update(device_str=str(device), offload={"actor": offload[0], "rollout": offload[1]},
                   micro_batch=cfg.actor.micro_batch_size, global_batch=cfg.actor.global_batch_size,
                   gradient_checkpointing=cfg.actor.model.gradient_checkpointing, overrides=args.overrides)
    runner = Runner(cfg, placement, offload, console=False)
    try:
        runner.setup()
        for policy in (runner.group.module, runner.rollout_policy):
            annotate_parts(policy)
        hooks = PhaseHooks(runner, str(device))
        steps = []
        for _ in range(args.warmup):
            steps.append({k: float(v) for k, v in runner.train_step().items() if k.startswith("time/")})
            print(" | ".join(f"{k[5:]} {v:.2f}" for k, v in steps[-1].items()), flush=True)
        payload["steps"] = steps
        save()
        hooks.mode = "profile"
        metrics = runner.train_step()
        payload["profiled_step"] = {k: float(v) for k, v in metrics.items() if k.startswith("time/")}
        payload["phases"] = {
            phase: {"wall_s": hooks.walls[phase], **write_table(prof, args.out_dir / f"{args.label}_{phase}.txt",
                                                                str(device), f"{args.label}: {phase} phase")}
            for phase, prof in hooks.profiles.items()
        }
        save()
        hooks.mode = "flops"
        runner.train_step()
        for phase, flops in hooks.flops.items():
            payload["phases"][phase].update(flops=flops, limit_s=flops / LIMIT_FLOPS)
        save()
    finally:
        runner.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    payload: dict = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if cuda else "cpu",
                     "size": args.size, "envs": args.envs, "rollout_steps": args.rollout_steps,
                     "command": "python scripts/profile_step.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    out = args.out_dir / f"{args.label}.json"

    def save() -> None:
        out.write_text(json.dumps(payload, indent=2, default=str))

    profile_runner(args, payload, save)
    if args.anchor != "none":
        from profile_anchor import AnchorShape, measure_anchor

        shape = AnchorShape.tiny() if args.anchor == "tiny" else AnchorShape()
        payload["anchor"] = measure_anchor("cuda" if cuda else "cpu", shape, micro=payload["micro_batch"],
                                           global_batch=payload["global_batch"],
                                           samples=args.envs * args.rollout_steps // 8,
                                           forwards=args.rollout_steps // 8,
                                           profile_dir=args.out_dir, label=f"{args.label}_anchor")
        save()
    print_summary(payload)
    print(f"saved {out}")
    return 0


def print_summary(payload: dict) -> None:
    print(f"\n{payload['device']}: step {payload['profiled_step'].get('time/step', 0):.2f} s (profiled)")
    for phase, info in payload.get("phases", {}).items():
        busy = info.get("gpu_busy_s")
        print(f"{phase}: wall {info['wall_s']:.2f} s, GPU busy {busy if busy is None else round(busy, 2)} s, "
              f"limit {info.get('limit_s', float('nan')):.2f} s, syncs {info['syncs']}")
        for part, t in info["parts"].items():
            print(f"   {part}: {t['calls']} calls, cpu {t['cpu_ms']:.0f} ms, device {t['device_ms']:.0f} ms")
        for op in info["top"][:12]:
            print(f"   {op['self_ms']:9.1f} ms  {op['calls']:6d}  {op['op']}")
    anchor = payload.get("anchor")
    if anchor:
        print(f"anchor: forward {anchor['forward_s']:.3f} s x {anchor['forwards_per_rollout']}, update "
              f"{anchor['update_s']:.2f} s ({anchor['update_tflops']:.0f} TFLOP/s); limit rollout "
              f"{anchor['limit_rollout_s']:.2f} s, update {anchor['limit_update_s']:.2f} s")


if __name__ == "__main__":
    raise SystemExit(main())

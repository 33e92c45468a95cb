"""Terminal and JSON output of a :class:`~rlvla_cli.placement.planner.Plan` (``rlvla plan-gpus``)."""

from __future__ import annotations

import json

from rich import box
from rich.console import Console
from rich.table import Table

from rlvla_cli.placement.memory import format_bytes
from rlvla_cli.placement.planner import Plan


def _phase_cell(parts: dict[str, int]) -> str:
    total = sum(parts.values())
    if len(parts) == 1:
        return format_bytes(total)
    return "\n".join([f"[bold]{format_bytes(total)}[/]", *(f"{c} {format_bytes(b)}" for c, b in parts.items())])


def _offload_cell(plan: Plan, components: dict[str, int]) -> str:
    notes = []
    for name in ("actor", "rollout"):
        decision = plan.offload.get(name)
        if name in components and decision and decision.shares_gpu:
            state = "on" if decision.applied else "[red]NEEDED[/]" if decision.needed else "off"
            notes.append(f"{name} {state}")
    return "\n".join(notes) or "-"


def node_table(plan: Plan, node: int) -> Table:
    """One row per GPU of ``node``: components x processes, training / rollout phase memory, peak, offload."""
    cap = plan.gpu_mem_bytes
    per_node = plan.placement.gpus_per_node
    title = f"node {node} (global GPU ranks {node * per_node}-{(node + 1) * per_node - 1})"
    title += f" - {format_bytes(cap)} per GPU" if cap else ""
    table = Table(title=title, title_justify="left", show_lines=True, box=box.SIMPLE_HEAD)
    for col in ("GPU", "components", "training", "rollout", "peak"):
        table.add_column(col, no_wrap=True)
    table.add_column("offload", min_width=11)
    for gpu in (g for g in plan.gpus if g.node == node):
        comps = "\n".join(c if n == 1 else f"{c} x{n}" for c, n in gpu.processes.items())
        peak = format_bytes(gpu.peak)
        if cap:
            share = gpu.peak / cap
            style = "red" if share > 1 else "yellow" if share > 0.9 else "green"
            peak = f"[{style}]{peak}\n{share:.0%}[/]"
        table.add_row(str(gpu.local_gpu), comps, _phase_cell(gpu.training), _phase_cell(gpu.rollout), peak,
                      _offload_cell(plan, gpu.processes))
    return table


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def summary_lines(plan: Plan) -> list[str]:
    """Mode, model size, worker counts and offload decisions, one fact per line."""
    pl, prof = plan.placement, plan.profile
    lines = [
        f"mode: {pl.mode} on {pl.num_nodes} node(s) x {pl.gpus_per_node} {'CPU slot' if pl.cpu_mode else 'GPU'}(s)",
        f"model: {prof.name}, {_count(prof.total_params)} parameters, {_count(prof.trainable_params)} trainable",
        f"workers: env {pl.env_workers}, rollout {pl.rollout_workers}, actor data-parallel {pl.actor_dp_size}",
    ]
    for name, decision in plan.offload.items():
        lines.append(f"{name} offload: {decision.describe()}")
    if pl.num_nodes > 1:
        for node in range(pl.num_nodes):
            gpus = [g for g in plan.gpus if g.node == node]
            roles = [c for c in ("actor", "env", "rollout") if any(p.node == node for p in pl.components[c].processes)]
            peak = max(gpus, key=lambda g: g.peak, default=None)
            memory = f", peak {format_bytes(peak.peak)} on GPU {peak.local_gpu}" if peak else ""
            lines.append(f"node {node}: {', '.join(roles) or 'idle'}{memory}")
    return lines


def print_plan(plan: Plan, console: Console | None = None) -> None:
    """Tables per node, the summary, then refusals (red), warnings and suggestions."""
    console = console or Console()
    for node in range(plan.placement.num_nodes):
        if any(g.node == node for g in plan.gpus):
            console.print(node_table(plan, node))
    for line in summary_lines(plan):
        console.print(line, highlight=False)
    if plan.placement.cpu_mode:
        console.print("CPU mode: every process runs on the CPU; no GPU memory is used.")
    elif not plan.gpu_mem_bytes:
        console.print("GPU memory unknown: pass --gpu-mem (e.g. 80GiB) to check that it fits.")
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for refusal in plan.refusals:
        console.print(f"[bold red]refused:[/] `{refusal.key}`: {refusal.reason}. Fix: {refusal.fix}.", highlight=False)
    if plan.suggestions:
        console.print("suggestions:", highlight=False)
        for line in plan.suggestions:
            console.print(f"  - {line}", highlight=False)
    if plan.ok:
        console.print("[green]plan OK[/]")


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2)

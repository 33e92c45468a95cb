"""`rlvla plan-gpus`: resolved placement, offload decisions and predicted memory per GPU, no GPU needed."""

from __future__ import annotations

from pathlib import Path

import typer

from rlvla_cli.errors import UserError


def parse_gpu_mem(text: str | None) -> int | None:
    """``--gpu-mem`` (``80GiB``, ``24GB``, ``81920MiB``) -> bytes; a bad value is a UserError."""
    if text is None:
        return None
    from rlvla_cli.placement.memory import parse_memory_size

    try:
        return parse_memory_size(text)
    except ValueError:
        raise UserError(
            f"cannot read --gpu-mem `{text}` as a memory size",
            fix="write a number with a unit, e.g. 80GiB, 24GB or 81920MiB",
        ) from None


def run_plan_gpus(
    config: Path | None,
    gpus: int | None,
    nodes: int | None,
    gpu_mem: str | None,
    as_json: bool,
    overrides: list[str],
) -> None:
    """Load the config, plan it, print tables (or JSON); exit code 2 when the plan is refused."""
    from rich.console import Console

    from rlvla_cli.config.loader import load_config
    from rlvla_cli.placement.planner import detect_gpus, plan, slots_needed
    from rlvla_cli.placement.render import plan_json, print_plan

    mem_bytes = parse_gpu_mem(gpu_mem)
    if gpus is not None and gpus < 0:
        raise UserError(f"--gpus must be 0 or more, got {gpus}", fix="pass the GPUs per node, e.g. --gpus 8")
    if nodes is not None and nodes < 1:
        raise UserError(f"--nodes must be at least 1, got {nodes}", fix="pass the number of machines, e.g. --nodes 2")
    cfg = load_config(config, overrides)
    detected, detected_mem = detect_gpus()
    if gpus is None:
        gpus = cfg.cluster.num_gpus_per_node if cfg.cluster.num_gpus_per_node is not None else detected
        if gpus == 0 and cfg.cluster.num_gpus_per_node is None:
            raise UserError(
                "no GPU is visible here and the config does not say how many GPUs a node has",
                fix="pass --gpus N (GPUs per node), e.g. `rlvla plan-gpus --config F --gpus 8 --gpu-mem 80GiB`",
            )
    if mem_bytes is None and detected:
        mem_bytes = detected_mem
    cpu_mode = gpus == 0
    if cpu_mode:  # cluster.num_gpus_per_node: 0 -> every process on the CPU; ranks are CPU slots
        gpus = slots_needed(cfg.cluster.component_placement)
    result = plan(cfg, gpus, nodes, None if cpu_mode else mem_bytes, cpu_mode=cpu_mode)
    if as_json:
        print(plan_json(result))
    else:
        print_plan(result, Console(soft_wrap=True))
    if not result.ok:
        raise typer.Exit(code=2)

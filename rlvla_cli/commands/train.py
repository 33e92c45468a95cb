"""`rlvla train`: load the config, plan the placement on the hardware present, run the loop."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlvla_cli.errors import UserError, ensure_output_dir

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig


def hardware_placement(cfg: RootConfig) -> tuple[Any, tuple[bool, bool]]:
    """Resolve ``cluster.component_placement`` on the GPUs present (CPU mode without GPUs: ranks become CPU
    process slots) and plan offload; raises the planner's first refusal as a ConfigError.
    Returns (ResolvedPlacement, (actor offload, rollout offload))."""
    from rlvla_cli.placement.planner import detect_gpus, plan, resolve_micro_batch, slots_needed
    from rlvla_cli.placement.resolve import resolve_placement
    from rlvla_cli.placement.rules import placement_rules

    detected, memory = detect_gpus()
    if detected == 0:
        # CPU mode: ranks are CPU process slots; no memory to plan, only the divisibility rules.
        slots = cfg.cluster.num_gpus_per_node or slots_needed(cfg.cluster.component_placement)
        placement = resolve_placement(cfg.cluster.component_placement, cfg.cluster.num_nodes, slots, cpu_mode=True)
        choice = resolve_micro_batch(cfg, placement, None)
        if choice is not None:
            print(choice.describe(), flush=True)
        refusals = placement_rules(cfg, placement)
        if refusals:
            raise refusals[0].to_error()
        return placement, (False, False)
    else:
        gpus = cfg.cluster.num_gpus_per_node or detected
        if gpus > detected and cfg.cluster.num_nodes == 1:
            raise UserError(f"the config asks for {gpus} GPUs per node but {detected} are visible",
                            key="cluster.num_gpus_per_node", fix=f"set it to {detected} or null (detect)")
        result = plan(cfg, gpus, None, memory)
        if result.micro_choice is not None:
            print(result.micro_choice.describe(), flush=True)
    if result.refusals:
        raise result.refusals[0].to_error()
    actor = result.offload.get("actor")
    rollout = result.offload.get("rollout")
    return result.placement, (bool(actor and actor.applied), bool(rollout and rollout.applied))


def run_train(config: Path | None, overrides: list[str]) -> None:
    """The body of ``rlvla train [--config F] [a.b=c ...]`` (no config: the built-in quickstart)."""
    from rlvla_cli.runtime.threads import available_cpus

    os.environ.setdefault("OMP_NUM_THREADS", str(available_cpus()))
    from rich.console import Console

    from rlvla_cli.config.loader import load_config
    from rlvla_cli.runtime.runner import Runner

    console = Console(stderr=True)
    cfg = load_config(config, overrides)
    from rlvla_cli.runtime.launcher import launched_externally

    if cfg.cluster.num_nodes > 1:
        result = _multinode(cfg, config, overrides, console)
        if result is None:
            return
    else:
        ensure_output_dir(cfg.run_dir, "runner.output_dir")  # before workers start, not after a step
        placement, offload = hardware_placement(cfg)
        if launched_externally() and int(os.environ["RANK"]) > 0:
            _serve_as_follower(cfg, placement)
            return
        _announce(console, placement, offload)
        result = Runner(cfg, placement, offload).run()
    console.print(f"run {result.status} at step {result.global_step}; run dir {result.run_dir}"
                  + (f"; checkpoint {result.checkpoint}" if result.checkpoint else ""), highlight=False)
    if result.status == "diverged":
        raise UserError(
            f"training stopped after {cfg.runner.max_consecutive_skipped} updates in a row were skipped for a "
            f"NaN/inf loss or gradient (checkpoint {result.checkpoint})",
            key="actor.optim.lr", fix="lower the learning rate or raise clip_grad, then resume from the checkpoint",
        )
    if result.status == "interrupted":
        raise SystemExit(130)


def _announce(console: Any, placement: Any, offload: tuple[bool, bool]) -> None:
    where = "CPU" if placement.cpu_mode else f"{placement.total_gpus} GPU(s)"
    console.print(f"[bold]rlvla train[/]: {placement.mode} placement on {placement.num_nodes} node(s), {where}; "
                  f"actor x{placement.actor_dp_size}, env workers x{placement.env_workers}; "
                  f"offload actor={offload[0]} rollout={offload[1]}", highlight=False)


def _multinode(cfg: RootConfig, config: Path | None, overrides: list[str], console: Any) -> Any:
    """Several nodes (runtime/distributed/): under torchrun, drive this node (node 0 returns the RunResult, the
    others None or exit); otherwise start every node's torchrun here (all hosts local) or print the commands."""
    from rlvla_cli.runtime.distributed.launch import all_local, launch_local, remote_instructions, under_torchrun

    if not under_torchrun(os.environ):
        if not all_local(cfg.cluster):
            raise remote_instructions(cfg.cluster, str(config) if config else None, list(overrides))
        ensure_output_dir(cfg.run_dir, "runner.output_dir")
        hardware_placement(cfg)  # refuse a bad placement before any process starts
        code = launch_local(cfg.cluster, config, list(overrides))
        if code:
            raise SystemExit(code)
        return None
    from rlvla_cli.runtime.distributed.driver import run_node

    placement, offload = hardware_placement(cfg)
    node = int(os.environ["RANK"])
    if node == 0:
        ensure_output_dir(cfg.run_dir, "runner.output_dir")
        _announce(console, placement, offload)
    outcome = run_node(cfg, placement, offload)
    if isinstance(outcome, int):
        if outcome:
            raise SystemExit(outcome)
        return None
    return outcome


def _serve_as_follower(cfg: RootConfig, placement: Any) -> None:
    """A non-zero rank started by DeepSpeed's launcher: a trainer rank serving rank 0 (the driver)."""
    from rlvla_cli.runtime.trainer_group import follower_main

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    actor = placement.components["actor"].processes
    if world != len(actor):
        raise UserError(f"the launcher started {world} ranks but the placement has {len(actor)} actor processes",
                        key="cluster.component_placement", fix="launch one process per actor slot")
    follower_main(cfg, rank, world, None, actor[rank].device, cfg.total_optimizer_steps)

"""`rlvla config show / validate / schema`."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax


def show(config: Path | None, overrides: list[str]) -> None:
    """Print the fully resolved config (defaults merged, overrides applied, interpolations resolved) as YAML."""
    from rlvla_cli.config.loader import dump_config, load_config

    cfg = load_config(config, overrides)
    text = dump_config(cfg)
    console = Console(soft_wrap=True)
    if console.is_terminal:
        console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    else:
        print(text, end="")
    _print_warnings(cfg)


def validate(config: Path | None, overrides: list[str]) -> None:
    """Check schema, cross-field rules and placement rules; print one green OK line with a short summary."""
    from rlvla_cli.config.loader import load_config, resolve_config_path
    from rlvla_cli.placement.planner import validate_placement_rules

    cfg = load_config(config, overrides)
    validate_placement_rules(cfg)
    console = Console(soft_wrap=True, highlight=False)
    console.print(f"[bold green]OK[/] {escape(str(resolve_config_path(config)))}: {escape(summary(cfg))}")
    _print_warnings(cfg)


def schema() -> None:
    """Print the JSON Schema of the whole config to stdout."""
    from rlvla_cli.config.schema import RootConfig

    print(json.dumps(RootConfig.model_json_schema(), indent=2))


def summary(cfg) -> str:  # noqa: ANN001 - a RootConfig; typed loosely to keep imports lazy
    """One line: algorithm, model, envs, placement, batch sizes."""
    algo, model, train = cfg.algorithm, cfg.actor.model, cfg.env.train
    placement = ", ".join(f"{key}: {value}" for key, value in cfg.cluster.component_placement.items())
    lora = " + LoRA" if model.is_lora else ""
    return (
        f"{algo.adv_type.upper()} ({algo.loss_type}), {model.model_type}{lora} "
        f"({model.num_action_chunks}x{model.action_dim} actions), {train.total_num_envs} {train.env_type} envs x "
        f"{train.max_steps_per_rollout_epoch} steps x {train.rollout_epoch} epochs, "
        f"batch {cfg.actor.global_batch_size}/{cfg.actor.micro_batch_size}, "
        f"{cfg.cluster.num_nodes} node(s) [{placement}]"
    )


def _print_warnings(cfg) -> None:  # noqa: ANN001
    notes = cfg.warnings()
    if notes:
        console = Console(stderr=True, soft_wrap=True, highlight=False)
        for note in notes:
            console.print(f"[yellow]warning:[/] {escape(note)}")


def import_rlinf(source: Path, output: Path | None) -> None:
    """Convert an RLinf embodied YAML into an rlvla config (``output``, default ``<name>_rlvla.yaml`` next to the
    source), print a table of every RLinf key (mapped to what, dropped and why, unsupported), validate the result
    with rlvla's loader; ``ConfigError`` (exit 2) when a key cannot be mapped."""
    from rich.table import Table

    from rlvla_cli.config.rlinf_import import UNSUP, convert_and_validate
    from rlvla_cli.errors import ConfigError

    output = output or source.with_name(f"{source.stem}_rlvla.yaml")
    result = convert_and_validate(source, output)
    styles = {"mapped": "green", "derived": "cyan", "dropped": "dim", UNSUP: "bold red"}
    table = Table(title=f"RLinf {source.name} -> rlvla", show_lines=False)
    for column in ("RLinf key", "value", "status", "rlvla key / reason"):
        table.add_column(column, overflow="fold")
    for row in result.rows:
        note = f"({row.note})" if row.note and row.target else row.note
        detail = " ".join(part for part in (row.target, note) if part)
        status = f"[{styles[row.status]}]{row.status}[/]"
        table.add_row(escape(row.key), escape(repr(row.value)), status, escape(detail))
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped / redirected: do not fold the keys into an 80-column table
        console = Console(width=200)
    console.print(table)
    if result.unsupported:
        keys = ", ".join(f"{row.key} ({row.note})" for row in result.unsupported)
        raise ConfigError(f"{len(result.unsupported)} key(s) cannot be mapped: {keys}", file=str(source),
                          fix="change or remove them in the RLinf file (see docs/porting_from_rlinf.md); nothing "
                          "was written")
    Console(soft_wrap=True, highlight=False).print(f"[bold green]OK[/] wrote {escape(str(output))} (validated)")

"""`rlvla inspect-checkpoint DIR [--config F] [--json]`: what a checkpoint directory is and whether it loads.

Reads metadata only (rlvla_cli/checkpoints/); prints tables or JSON; exit code 2 with one paragraph per problem
when it would not load with the config (or, without one, with the family's defaults).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def run_inspect_checkpoint(directory: Path, config: Path | None, as_json: bool, overrides: list[str]) -> None:
    """Inspect ``directory`` against ``config``'s ``actor.model`` (None: see ``checkpoints.inspect``)."""
    from rich.console import Console

    from rlvla_cli.checkpoints.inspect import inspect_checkpoint
    from rlvla_cli.checkpoints.report import render

    model_cfg = None
    if config is not None or overrides:
        from rlvla_cli.config.loader import load_config

        model_cfg = load_config(config, overrides).actor.model
    report = inspect_checkpoint(directory, model_cfg)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        render(report, Console(soft_wrap=True))
    if not report.ok:
        if as_json:  # the paragraphs are in the JSON; say why the exit code is 2 on stderr as well
            for problem in report.all_problems():
                Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {problem.paragraph()}",
                                                           highlight=False)
        raise typer.Exit(code=2)

"""`rlvla sft`: behaviour cloning from `rlvla collect-demos` demonstrations."""

from __future__ import annotations

from pathlib import Path


def run_sft_command(config: Path, overrides: list[str]) -> None:
    from rich.console import Console

    from rlvla_cli.config.loader import dump_config, load_config
    from rlvla_cli.sft.loop import run_sft

    console = Console()
    cfg = load_config(config, overrides)
    result = run_sft(cfg, log=lambda line: console.print(line, highlight=False))
    (result.run_dir / "config.yaml").write_text(dump_config(cfg))
    final = result.history[-1] if result.history else {}
    success = final.get("eval/success_once")
    tail = f"; eval success_once {success:.2f}" if success is not None else ""
    console.print(
        f"[green]SFT done[/]: {result.steps} steps{tail}. Start RL from it with "
        f"`rlvla train --config {config} actor.model.model_path={result.policy_dir}`."
    )

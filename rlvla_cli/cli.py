"""The `rlvla` command line: a thin Typer app. Heavy imports happen inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from rlvla_cli.errors import UserError

app = typer.Typer(
    name="rlvla",
    help="Online RL fine-tuning (PPO / GRPO) of Vision-Language-Action policies in simulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show, validate and describe configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (default: the built-in quickstart).")
OverridesArg = typer.Argument(None, help="Overrides as a.b=c, typed by the schema.")


@app.command()
def train(config: Path | None = ConfigOpt, overrides: list[str] | None = OverridesArg) -> None:
    """Validate the config, plan placement, spawn workers and run the RL loop."""
    from rlvla_cli.commands.train import run_train

    run_train(config, overrides or [])


@app.command("eval")
def evaluate(
    config: Path | None = ConfigOpt,
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Run dir, HF model dir or LoRA adapter."),
    episodes: int | None = typer.Option(None, "--episodes", "-n", help="Episodes per task."),
    greedy: bool = typer.Option(True, "--greedy/--sample", help="Greedy or sampled actions."),
    out: Path | None = typer.Option(None, "--out", help="Report directory."),
    overrides: list[str] | None = OverridesArg,
) -> None:
    """Run evaluation episodes; print per-task success and write a JSON report and videos."""
    from rlvla_cli.commands.evaluate import run_eval

    run_eval(config, checkpoint, episodes, greedy, out, overrides or [])


@app.command("download-assets")
def download_assets(
    name: str | None = typer.Argument(None, help="Catalogue name or any org/name repository."),
    directory: Path | None = typer.Option(None, "--dir", help="Target directory."),
    revision: str | None = typer.Option(None, "--revision", help="Branch, tag or commit."),
    mirror: str | None = typer.Option(None, "--mirror", help="Hub mirror URL (sets HF_ENDPOINT)."),
    list_catalogue: bool = typer.Option(False, "--list", help="Show the catalogue and exit."),
    write_config: Path | None = typer.Option(None, "--write-config", help="Write the keys into this config."),
) -> None:
    """Fetch models and simulator assets from the Hugging Face hub (resumable)."""
    from rlvla_cli.commands.download import run_download

    run_download(name, directory, revision, mirror, list_catalogue, write_config)


@app.command("plan-gpus")
def plan_gpus(
    config: Path | None = ConfigOpt,
    gpus: int | None = typer.Option(None, "--gpus", help="GPUs per node (default: the ones present)."),
    nodes: int | None = typer.Option(None, "--nodes", help="Number of nodes (default: cluster.num_nodes)."),
    gpu_mem: str | None = typer.Option(None, "--gpu-mem", help="Memory per GPU, e.g. 80GiB."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    overrides: list[str] | None = OverridesArg,
) -> None:
    """Show placement, offload decisions and predicted memory per GPU, without a GPU."""
    from rlvla_cli.commands.plan_gpus import run_plan_gpus

    run_plan_gpus(config, gpus, nodes, gpu_mem, as_json, overrides or [])


@app.command("collect-demos")
def collect_demos(
    env: str = typer.Option(..., "--env", help="ManiSkill env id, e.g. PickCube-v1, or `builtin`."),
    num: int = typer.Option(..., "-n", help="Number of successful demonstrations."),
    out: Path = typer.Option(..., "--out", help="Dataset directory."),
    workers: int = typer.Option(2, "--workers", help="Parallel planner processes."),
    image_size: int = typer.Option(None, "--image-size", help="Camera height and width (128; builtin: 64)."),
    seed: int = typer.Option(0, "--seed", help="First episode seed."),
    action_noise: float = typer.Option(
        0.0, "--action-noise", help="builtin only: std of the noise on the expert's moves (imperfect demos)."
    ),
    num_objects: int = typer.Option(
        3, "--num-objects", help="builtin only: objects per scene (match env.*.init_params.num_objects)."
    ),
) -> None:
    """Collect successful demonstrations (ManiSkill's motion planner, or the built-in task's scripted expert)."""
    from rlvla_cli.commands.collect_demos import run_collect_demos

    run_collect_demos(env, num, out, workers, image_size, seed, action_noise, num_objects)


@app.command()
def sft(
    config: Path = typer.Option(..., "--config", "-c", help="YAML config with an `sft:` section."),
    overrides: list[str] | None = OverridesArg,
) -> None:
    """Behaviour cloning from demonstrations: the starting point RL improves on."""
    from rlvla_cli.commands.sft import run_sft_command

    run_sft_command(config, overrides or [])


@app.command("inspect-checkpoint")
def inspect_checkpoint(
    directory: Path = typer.Argument(..., help="Model directory, LoRA adapter, or rlvla run / checkpoint directory."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Check it against this config's actor.model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    overrides: list[str] | None = OverridesArg,
) -> None:
    """Say what a checkpoint is, what maps to what, and whether it loads (tensor metadata only, seconds)."""
    from rlvla_cli.commands.inspect_checkpoint import run_inspect_checkpoint

    run_inspect_checkpoint(directory, config, as_json, overrides or [])


@config_app.command("show")
def config_show(config: Path | None = typer.Argument(None), overrides: list[str] | None = OverridesArg) -> None:
    """Print the resolved config as YAML."""
    from rlvla_cli.commands.config_cmd import show

    show(config, overrides or [])


@config_app.command("validate")
def config_validate(config: Path = typer.Argument(...), overrides: list[str] | None = OverridesArg) -> None:
    """Check a config (schema, cross-field rules, placement); exit 2 with the reason if it is wrong."""
    from rlvla_cli.commands.config_cmd import validate

    validate(config, overrides or [])


@config_app.command("import-rlinf")
def config_import_rlinf(
    source: Path = typer.Argument(..., help="RLinf embodied YAML (its `defaults:` files next to it)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the rlvla config."),
) -> None:
    """Convert an RLinf recipe into an rlvla config; print how every key maps; exit 2 if one cannot be mapped."""
    from rlvla_cli.commands.config_cmd import import_rlinf

    import_rlinf(source, output)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config."""
    from rlvla_cli.commands.config_cmd import schema

    schema()


def main() -> None:
    """Console entry point: user errors become one paragraph on stderr and exit code 2, runtime faults one
    paragraph and exit code 3 (docs/reliability.md); ``--debug`` anywhere on the line adds the traceback."""
    import os

    from rlvla_cli.errors import RuntimeFault

    debug = "--debug" in sys.argv[1:] or os.environ.get("RLVLA_DEBUG", "") not in ("", "0")
    sys.argv[1:] = [arg for arg in sys.argv[1:] if arg != "--debug"]
    try:
        app()
    except (UserError, RuntimeFault) as err:
        from rich.console import Console

        console = Console(stderr=True, soft_wrap=True)
        if debug:
            import traceback

            console.print("".join(traceback.format_exception(err)), highlight=False, markup=False)
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)  # messages may quote [file:line]
        sys.exit(err.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C: the user insists; the children are already being stopped
        print("interrupted", file=sys.stderr)
        sys.exit(130)

"""`rlvla collect-demos`: successful ManiSkill demonstrations for SFT, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from rlvla_cli.errors import UserError, ensure_output_dir


def run_collect_demos(env: str, num: int, out: Path, workers: int, image_size: int, seed: int) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rlvla_cli.demos.collect import CollectSettings, collect
    from rlvla_cli.demos.planner import check_planner_task

    if num < 1:
        raise UserError("must be at least 1", key="-n", fix="ask for one or more demonstrations")
    if workers < 1:
        raise UserError("must be at least 1", key="--workers", fix="use 1 or more worker processes")
    check_planner_task(env)
    ensure_output_dir(out, "--out")
    console = Console()
    settings = CollectSettings(env, num, out, workers, image_size, seed)
    with Progress(
        TextColumn(f"[bold]{env}[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task("demos", total=num, note="", completed=0)

        def on_result(result: dict, num_done: int) -> None:
            note = f"seed {result['seed']}: " + ("ok" if result["success"] else result["reason"])
            progress.update(task, completed=num_done, note=note)

        meta = collect(settings, on_result)
    console.print(
        f"[green]{meta['num_episodes']} demonstrations[/] ({meta['num_transitions']} steps) in {out}; "
        f"set `unnorm_key: {meta['unnorm_key']}` and read with datasets.load_dataset('parquet', "
        f"data_files='{out}/data/*.parquet')."
    )

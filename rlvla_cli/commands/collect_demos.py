"""`rlvla collect-demos`: successful ManiSkill demonstrations for SFT, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from rlvla_cli.errors import UserError, ensure_output_dir


def run_collect_demos(
    env: str, num: int, out: Path, workers: int, image_size: int | None, seed: int, action_noise: float = 0.0,
    num_objects: int = 3,
) -> None:
    from rich.console import Console

    if num < 1:
        raise UserError("must be at least 1", key="-n", fix="ask for one or more demonstrations")
    if workers < 1:
        raise UserError("must be at least 1", key="--workers", fix="use 1 or more worker processes")
    if action_noise < 0:
        raise UserError(f"{action_noise} is negative", key="--action-noise", fix="use 0 (clean) or a std like 0.3")
    if env == "builtin":
        _collect_builtin(num, out, image_size or 64, seed, action_noise, num_objects, Console())
        return
    if num_objects != 3:
        raise UserError("only the built-in task takes a number of objects", key="--num-objects",
                        fix="drop --num-objects for ManiSkill (the task defines its objects)")
    if action_noise:
        raise UserError("only the built-in task's expert takes action noise", key="--action-noise",
                        fix="drop --action-noise for ManiSkill (its motion planner's demos are replayed as planned)")
    from rlvla_cli.demos.planner import check_planner_task

    check_planner_task(env)
    ensure_output_dir(out, "--out")
    _collect_maniskill(env, num, out, workers, image_size or 128, seed, Console())


def _collect_builtin(
    num: int, out: Path, image_size: int, seed: int, action_noise: float, num_objects: int, console
) -> None:
    from rlvla_cli.config.env import BuiltinInitParams
    from rlvla_cli.demos.builtin_expert import BuiltinCollectSettings, collect_builtin

    if not 32 <= image_size <= 128:
        raise UserError(f"{image_size} is outside the built-in renderer's range", key="--image-size",
                        fix="use 32 to 128 pixels (64 by default)")
    limits = BuiltinInitParams.model_fields["num_objects"].metadata
    low = next((m.ge for m in limits if hasattr(m, "ge")), 1)
    high = next((m.le for m in limits if hasattr(m, "le")), num_objects)
    if not low <= num_objects <= high:
        raise UserError(f"{num_objects} objects is outside the built-in task's range", key="--num-objects",
                        fix=f"use {low} to {high} (env.*.init_params.num_objects must match)")
    ensure_output_dir(out, "--out")
    settings = BuiltinCollectSettings(num, out, image_size, seed, action_noise, num_objects=num_objects)
    meta = collect_builtin(settings)
    console.print(
        f"[green]{meta['num_episodes']} demonstrations[/] ({meta['num_transitions']} steps, expert success "
        f"{meta['expert_success_rate_this_run']}) in {out}; set `unnorm_key: {meta['unnorm_key']}`."
    )


def _collect_maniskill(env: str, num: int, out: Path, workers: int, image_size: int, seed: int, console) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rlvla_cli.demos.collect import CollectSettings, collect

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

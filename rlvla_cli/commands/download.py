"""`rlvla download-assets`: list the catalogue, fetch a repository, print or write the config keys it sets."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from rlvla_cli.errors import UserError


def catalogue_table() -> Table:
    """The catalogue as a rich table: name, repository, type, what it is, the keys it sets."""
    from rlvla_cli.hub.catalogue import catalogue_entries

    table = Table(title="rlvla download-assets catalogue", show_lines=False)
    for column in ("name", "repository", "type", "description", "config keys"):
        table.add_column(column, overflow="fold")
    for entry in catalogue_entries():
        keys = ", ".join(entry.config_keys) or "-"
        kind = entry.repo_type if entry.kind != "lora" else "model (LoRA)"
        table.add_row(entry.name, entry.repo_id, kind, entry.description, keys)
    return table


def keys_table(values: dict) -> Table:
    """The config keys a download sets, ready to paste."""
    table = Table(title="config keys to set", show_header=True)
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key, value in values.items():
        table.add_row(key, str(value))
    return table


def run_download(
    name: str | None,
    directory: Path | None,
    revision: str | None,
    mirror: str | None,
    list_catalogue: bool,
    write_config: Path | None,
) -> None:
    """Body of `rlvla download-assets` (see cli.py for the flags)."""
    console = Console(soft_wrap=True)
    if list_catalogue:
        console.print(catalogue_table())
        return
    if not name:
        raise UserError(
            "download-assets needs a NAME (a catalogue name or an org/name repository)",
            fix="run `rlvla download-assets --list` to see the catalogue",
        )
    from rlvla_cli.hub.config_writer import write_config_keys
    from rlvla_cli.hub.download import config_values, download_with_requirements

    results = download_with_requirements(name, directory, revision, mirror)
    for result in results:
        origin = f" (commit {result.commit[:12]})" if result.commit else ""
        console.print(
            f"[green]ok[/] {result.entry.repo_id} -> {result.local_path}{origin}; "
            f"{result.verified_files} file(s) verified against {result.checked_against}",
            highlight=False,
        )
        if result.entry.note:
            console.print(f"note: {result.entry.note}", highlight=False)
    values = config_values(results)
    if not values:
        return
    if write_config is not None:
        kept_comments = write_config_keys(write_config, values)
        console.print(f"wrote {len(values)} key(s) into {write_config}", highlight=False)
        if not kept_comments:
            console.print("[yellow]warning:[/] ruamel.yaml is not installed, so comments in that file were dropped")
    else:
        console.print(keys_table(values))
        console.print("Set them in your config, or rerun with --write-config FILE.", highlight=False)

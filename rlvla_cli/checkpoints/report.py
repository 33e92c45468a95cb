"""The inspection report: what a directory is, what maps to what, what is ignored, problems; JSON and tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rlvla_cli.errors import UserError


@dataclass
class Problem:
    """Something that stops the checkpoint from loading as configured: one paragraph naming file, key, fix."""

    message: str
    file: str | None = None
    key: str | None = None
    fix: str | None = None

    @classmethod
    def from_error(cls, err: UserError) -> Problem:
        """The loader's own error, kept word for word (its text already names file, key and fix)."""
        return cls(str(err))

    def paragraph(self) -> str:
        if self.file is None and self.key is None and self.fix is None:
            return self.message
        return str(UserError(self.message, file=self.file, key=self.key, fix=self.fix))


@dataclass
class Group:
    """Tensors of one part of the model: how many are stored, their parameters, how many the model takes."""

    tensors: int = 0
    params: int = 0
    loaded: int = 0


@dataclass
class Report:
    """Everything ``rlvla inspect-checkpoint`` says about one directory (see docs/checkpoints.md)."""

    path: str
    family: str
    family_label: str
    evidence: list[str] = field(default_factory=list)
    model_type: str | None = None
    checked_with: str = ""
    files: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    ignored: dict[str, list[str]] = field(default_factory=dict)
    total_params: int = 0
    dtypes: dict[str, int] = field(default_factory=dict)
    norm_stats: dict[str, list[str]] = field(default_factory=dict)
    adapter: dict[str, Any] | None = None
    base: Report | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.all_problems()

    def all_problems(self) -> list[Problem]:
        return self.problems + (self.base.all_problems() if self.base is not None else [])

    def add_group(self, group: str, params: int, loaded: bool) -> None:
        g = self.groups.setdefault(group, Group())
        g.tensors += 1
        g.params += params
        g.loaded += int(loaded)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = [p.paragraph() for p in self.problems]
        data["base"] = self.base.to_json() if self.base is not None else None
        data["ignored"] = {reason: {"count": len(keys), "examples": keys[:3]} for reason, keys in self.ignored.items()}
        data["ok"] = self.ok
        return data


def _count(n: int) -> str:
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def render(report: Report, console) -> None:
    """Rich tables for a person (``--json`` prints ``to_json`` instead), then every problem as a paragraph."""
    _render_body(report, console)
    problems = report.all_problems()
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s): it would not load[/]")
        for p in problems:
            console.print(f"[red]-[/] {p.paragraph()}", highlight=False)
    else:
        console.print("[bold green]ok:[/] it would load")


def _render_body(report: Report, console) -> None:
    from rich.table import Table

    console.print(f"[bold]{report.path}[/]: {report.family_label}")
    for line in report.evidence:
        console.print(f"  because: {line}", highlight=False)
    if report.model_type:
        console.print(f"  loads as model_type [bold]{report.model_type}[/], checked with {report.checked_with}")
    if report.files:
        table = Table(title="files", title_justify="left")
        for col in ("file", "holds", "tensors"):
            table.add_column(col)
        for f in report.files:
            table.add_row(f["name"], f["holds"], str(f.get("tensors", "")))
        console.print(table)
    if report.groups:
        table = Table(title="tensor groups", title_justify="left")
        for col in ("group", "tensors", "parameters", "loaded"):
            table.add_column(col, justify="left" if col == "group" else "right")
        for name, g in report.groups.items():
            table.add_row(name, str(g.tensors), _count(g.params), str(g.loaded))
        console.print(table)
    dtypes = ", ".join(f"{d} {_count(n)}" for d, n in report.dtypes.items())
    console.print(f"parameters: {_count(report.total_params)} ({report.total_params:,}); dtypes: {dtypes or '-'}")
    for reason, keys in report.ignored.items():
        console.print(f"ignored {len(keys)}: {reason} (e.g. {keys[0]})", highlight=False)
    for source, keys in report.norm_stats.items():
        console.print(f"normalisation keys in {source}: {', '.join(keys) or '-'}", highlight=False)
    if report.adapter:
        a = report.adapter
        console.print(f"adapter: rank {a.get('r')}, alpha {a.get('lora_alpha')}, {a.get('tensors')} tensors, "
                      f"targets {a.get('target_modules')}, base {a.get('base_model_name_or_path')!r}", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if report.base is not None:
        console.print("\n[bold]base model[/]")
        _render_body(report.base, console)

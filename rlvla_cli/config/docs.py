"""Render the key reference of docs/config.md from the pydantic models (run scripts/gen_config_docs.py)."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from rlvla_cli.config.introspect import discriminator_of, model_members, tag_of

BEGIN, END = "<!-- BEGIN GENERATED KEY REFERENCE -->", "<!-- END GENERATED KEY REFERENCE -->"


def type_name(annotation: Any) -> str:
    """A short, YAML-flavoured type: ``Literal['a', 'b']`` -> ``'a' | 'b'``, ``int | None`` -> ``int | null``."""
    if annotation is type(None):
        return "null"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in args)
        return f"{origin.__name__}[{inner}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: Any) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return ""
        return "" if isinstance(value, BaseModel) else json.dumps(value)
    if field.default is PydanticUndefined:
        return "required"
    return json.dumps(field.default)


def _collect(
    model: type[BaseModel],
    prefix: str,
    suffix: str,
    sections: list[tuple[str, list[str]]],
    seen: dict[Any, Any],
    union: tuple[type[BaseModel], ...] = (),
) -> None:
    """Append (title, rows) for ``model`` at key ``prefix``, then its sub-sections (parents before children).

    ``suffix`` names the union member a section belongs to (`` (env_type: maniskill)``); a sub-model all members
    of ``union`` share (``video_cfg``) is listed once without it, and a union repeated at another key
    (``env.eval``) points back to the first.
    """
    done = seen.setdefault("done", set())
    if (prefix, model) in done:
        return
    done.add((prefix, model))
    rows: list[str] = []
    sections.append((f"{prefix or '(top level)'}{suffix}", rows))
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        members = model_members(field.annotation)
        if len(members) > 1:
            twin = seen.setdefault(repr(field.annotation), key)
            if twin != key:
                sections.append((key, [f"Same keys as `{twin}` (the tables above), under `{key}`."]))
                continue
            discriminator = discriminator_of(members) or "?"
            for member in members:
                tag = f" ({discriminator}: {tag_of(member, discriminator)})"
                _collect(member, key, tag, sections, seen, tuple(members))
        elif members:
            shared = all(name in m.model_fields and m.model_fields[name].annotation is field.annotation for m in union)
            _collect(members[0], key, "" if shared else suffix, sections, seen)
        else:
            text = (field.description or "").replace("|", "\\|").replace("\n", " ")
            kind = type_name(field.annotation).replace("|", "\\|")
            rows.append(f"| `{key}` | {kind} | `{default_text(field)}` | {text} |")


def render_reference(root: type[BaseModel]) -> str:
    """Markdown: one table per section (key, type, default, description), in schema order."""
    sections: list[tuple[str, list[str]]] = []
    _collect(root, "", "", sections, {})
    out = []
    for title, rows in sections:
        if rows and not rows[0].startswith("|"):
            out += [f"### `{title}`", "", *rows, ""]
        elif rows:
            out += [f"### `{title}`", "", "| key | type | default | description |", "| --- | --- | --- | --- |"]
            out += [*rows, ""]
    return "\n".join(out).rstrip() + "\n"


def splice(document: str, reference: str) -> str:
    """Replace the text between the BEGIN / END markers of ``document`` with ``reference``."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{reference}\n{END}{tail}"

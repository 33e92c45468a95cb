"""Check every discriminator (``actor.model.model_type``, ``env.train.env_type``, ...) before interpolation.

A discriminator picks the kind of a section (which model, which simulator). An unknown value used to surface as
whatever failed first downstream: an override `actor.model.model_type=gpt5` clears the section (another kind's
keys do not belong to it), so `${actor.model.precision}` elsewhere no longer resolves and the message named
`rollout.precision`. This walk runs on the raw (composed, overridden) mapping first and names the real mistake:
the key, the choices, the closest one.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from rlvla_cli.config.introspect import discriminator_of, model_members, pick_member, tag_of
from rlvla_cli.config.messages import suggestion_text
from rlvla_cli.errors import ConfigError


def check_discriminators(data: dict[str, Any], root: type[BaseModel], source: str,
                         overridden: dict[str, str] | None = None) -> None:
    """Raise a ``ConfigError`` for the first discriminator in ``data`` whose value no member of its union has.

    data: the raw config mapping (before ``${...}`` interpolation); root: the schema (``RootConfig``);
    source: the file named in messages; overridden: {dotted key: override text} (the override is named instead).
    Values that are themselves interpolations (``${...}``) are left to the interpolation step.
    """
    problem = _first_unknown(data, root, [])
    if problem is None:
        return
    key, value, tags = problem
    overridden = overridden or {}
    where = f"override `{overridden[key]}`" if key in overridden else source
    choices = ", ".join(tags)
    hint = suggestion_text(str(value), tags) or f" (closest: `{_closest(str(value), tags)}`)"
    raise ConfigError(
        f"unknown {key.rsplit('.', 1)[-1]} `{value}`{hint}; the choices are {choices}",
        file=where, key=key, fix=f"set `{key}` to one of {choices}",
    )


def _closest(word: str, choices: list[str]) -> str:
    """The most similar choice however far (difflib's ratio): the hint when nothing is close enough for a
    did-you-mean."""
    return max(choices, key=lambda choice: difflib.SequenceMatcher(None, word.lower(), choice).ratio())


def _first_unknown(data: Any, model: type[BaseModel], path: list[str]) -> tuple[str, Any, list[str]] | None:
    """(dotted key, bad value, valid tags) of the first unknown discriminator under ``model``, or None."""
    if not isinstance(data, dict):
        return None
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        value, members = data[name], model_members(field.annotation)
        if not members or not isinstance(value, dict):
            continue
        child = members[0]
        if len(members) > 1:
            disc = discriminator_of(members)
            if disc is None or disc not in value:
                continue
            tag = value[disc]
            if isinstance(tag, str) and "${" in tag:
                continue
            child = pick_member(members, tag)
            if child is None or tag_of(child, disc) != str(tag):
                tags = [t for t in (tag_of(m, disc) for m in members) if t is not None]
                return ".".join([*path, name, disc]), tag, tags
        found = _first_unknown(value, child, [*path, name])
        if found is not None:
            return found
    return None

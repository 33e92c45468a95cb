"""`a.b=c` command-line overrides: parse, check the key against the schema, and set it in the raw config.

Values are parsed as YAML (`8` -> int, `1.0e-4` -> float, `[0.9, 0.95]` -> list, `null` -> None, `true`);
pydantic then types them by the field they land in, so `actor.optim.lr=1e-4` works too. Setting a section's
`env_type` / `model_type` to another kind clears that section first (its old keys belong to the old kind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from rlvla_cli.config.introspect import lookup
from rlvla_cli.config.merge import DISCRIMINATORS
from rlvla_cli.config.messages import RLINF_RENAMES, did_you_mean
from rlvla_cli.errors import ConfigError

# Dotted path of keys; a key may contain `,` and `-` (placement keys such as `actor,env,rollout`).
_KEY = re.compile(r"^[A-Za-z_][\w,\-]*(\.[A-Za-z_0-9][\w,\-]*)*$")


@dataclass(frozen=True)
class Override:
    """One parsed override: the dotted key split into parts, the YAML-parsed value and the original text."""

    parts: tuple[str, ...]
    value: Any
    text: str

    @property
    def key(self) -> str:
        return ".".join(self.parts)


def parse_override(text: str) -> Override:
    """``"actor.optim.lr=1e-4"`` -> Override(('actor', 'optim', 'lr'), 1e-4 as parsed by YAML, text)."""
    if "=" not in text:
        raise ConfigError(
            "no `=` in it", file=_source(text), fix="write overrides as key.path=value, e.g. runner.seed=1"
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    if key.startswith("+"):
        key = key[1:]  # Hydra's "add a key" prefix: every key here is known to the schema, so it is a no-op
    if not _KEY.match(key):
        raise ConfigError(
            f"`{key}` is not a dotted key path",
            file=_source(text),
            fix="use letters, digits and `_` separated by dots, e.g. actor.optim.lr=1e-4",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(
            f"the value is not valid YAML ({_first_line(err)})",
            file=_source(text),
            key=key,
            fix="quote the value, e.g. key='text: with colon'",
        ) from None
    return Override(tuple(key.split(".")), _as_float_if_numeric(value), text)


def _source(text: str) -> str:
    """How an override is named in messages (where a file name would stand)."""
    return f"override `{text}`"


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]


def _as_float_if_numeric(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` as a string; treat a string that Python parses as a float as that float."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        return float(value)
    return value


def apply_overrides(data: dict[str, Any], overrides: list[Override], root: type[BaseModel]) -> dict[str, str]:
    """Set every override in ``data`` (in place) after checking its key exists in ``root``'s schema.

    Returns {dotted key: override text} so validation errors can point at the override.
    """
    applied: dict[str, str] = {}
    for override in overrides:
        check_key(override, root, data)
        target = data
        for depth, part in enumerate(override.parts[:-1]):
            child = target.get(part)
            if child is None:
                child = target[part] = {}
            elif not isinstance(child, dict):
                prefix = ".".join(override.parts[: depth + 1])
                raise ConfigError(
                    f"`{prefix}` holds a value ({child!r}), not a section",
                    file=_source(override.text),
                    key=override.key,
                    fix=f"set `{prefix}=...` itself",
                )
            target = child
        name = override.parts[-1]
        if name in DISCRIMINATORS and name in target and target[name] != override.value:
            target.clear()  # another simulator / model: start the section afresh, as `defaults:` merging does
        target[name] = override.value
        applied[override.key] = override.text
    return applied


def check_key(override: Override, root: type[BaseModel], data: dict[str, Any]) -> None:
    """Raise a ConfigError with a did-you-mean when ``override``'s key is not in the schema."""
    node, siblings, index = lookup(root, list(override.parts), data)
    if node is not None:
        return
    bad = override.parts[index]
    where = ".".join(override.parts[:index]) or "the top level"
    close = did_you_mean(bad, siblings)
    if close:
        what, fix = f"unknown key `{bad}` under {where} (did you mean `{close}`?)", f"use `{close}`"
    elif bad in RLINF_RENAMES:
        what, fix = f"unknown key `{bad}` (RLinf's key; here it is {RLINF_RENAMES[bad]})", "use the rlvla key"
    elif siblings:
        what, fix = f"unknown key `{bad}` under {where}", f"valid keys there: {', '.join(sorted(siblings))}"
    else:
        what, fix = f"`{'.'.join(override.parts[:index])}` is a value, not a section", "override the value itself"
    raise ConfigError(what, file=_source(override.text), key=override.key, fix=fix)

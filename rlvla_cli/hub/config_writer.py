"""Write dotted config keys (``actor.model.model_path``) into a YAML file, keeping everything else in it.

ruamel.yaml round-trips the file (comments, key order, quoting stay as they were); without it, PyYAML rewrites the
file with the same keys and values but drops comments, and a warning says so.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from rlvla_cli.errors import ConfigError


def _set_dotted(tree: dict, dotted: str, value: Any, file: Path) -> None:
    """Create intermediate mappings as needed; refuse to replace a scalar or list with a mapping."""
    node = tree
    parts = dotted.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            node[part] = child = {}
        elif not hasattr(child, "get"):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"cannot set `{dotted}`: `{where}` is {type(child).__name__}, not a mapping",
                file=str(file),
                fix=f"edit `{where}` by hand or write the keys into another file",
            )
        node = child
    node[parts[-1]] = value


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config_keys(path: Path, values: dict[str, Any]) -> bool:
    """Set ``values`` (dotted key -> value) in the YAML file ``path`` (created if missing).

    Returns True when comments were preserved (ruamel.yaml available), False when the file was re-serialised.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        from ruamel.yaml import YAML
    except ImportError:
        YAML = None  # noqa: N806 - the class, or its absence
    if YAML is not None:
        yaml = YAML()
        yaml.preserve_quotes = True
        tree = _load(lambda: yaml.load(text), path)
        for key, value in values.items():
            _set_dotted(tree, key, value, path)
        out = io.StringIO()
        yaml.dump(tree, out)
        _atomic_write(path, out.getvalue())
        return True
    import yaml as pyyaml

    tree = _load(lambda: pyyaml.safe_load(text), path)
    for key, value in values.items():
        _set_dotted(tree, key, value, path)
    _atomic_write(path, pyyaml.safe_dump(tree, sort_keys=False))
    return False


def _load(loader, path: Path) -> Any:
    try:
        tree = loader()
    except Exception as error:  # noqa: BLE001 - any parser error is the user's file
        raise ConfigError(f"not valid YAML ({error})", file=str(path), fix="fix the file or pick another") from error
    if tree is None:
        return {}
    if not hasattr(tree, "get"):
        raise ConfigError("the top level is not a mapping", file=str(path), fix="pass a config file (key: value)")
    return tree

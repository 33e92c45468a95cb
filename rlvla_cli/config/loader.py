"""Load a config: YAML -> `defaults:` composition -> overrides -> `${a.b}` interpolation -> RootConfig.

Every user mistake (missing file, YAML syntax, unknown preset, unknown key, wrong type, failed rule) is a
`ConfigError` naming the file, the dotted key, what is wrong and the fix; never a traceback.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from rlvla_cli.config.discriminators import check_discriminators
from rlvla_cli.config.merge import deep_merge
from rlvla_cli.config.messages import did_you_mean, validation_to_config_error
from rlvla_cli.config.overrides import apply_overrides, parse_override
from rlvla_cli.errors import ConfigError

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig

BUILTIN_PRESET = "builtin_quickstart.yaml"
REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def builtin_preset_path() -> Path:
    """The embedded quickstart config used when no ``--config`` is given."""
    return Path(str(resources.files("rlvla_cli") / "presets" / BUILTIN_PRESET))


def preset_dirs() -> list[Path]:
    """Where `defaults:` entries and bare preset names are looked up after the including file's folder."""
    return [path for path in (REPO_CONFIGS, builtin_preset_path().parent) if path.is_dir()]


def load_config(path: Path | str | None, overrides: list[str] | tuple[str, ...] = ()) -> RootConfig:
    """Load, compose, override, interpolate and validate a config; ``path=None`` loads the built-in quickstart.

    ``path`` may also be a shipped preset's name (``maniskill_ppo_openvlaoft``). Returns a RootConfig. The rules
    that need the resolved placement are the placement package's (``placement.planner.validate_placement_rules``,
    run by the commands), so ``config`` never imports ``placement``.
    """
    file = resolve_config_path(path)
    data = compose_file(file, chain=())
    return load_config_dict(data, overrides, source=str(file))


def load_config_dict(
    data: dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    *,
    source: str = "<config>",
) -> RootConfig:
    """Like `load_config` for an already composed mapping (no `defaults:` key left in it)."""
    from rlvla_cli.config.schema import RootConfig

    data = copy.deepcopy(data)
    overridden = apply_overrides(data, [parse_override(text) for text in overrides], RootConfig)
    check_discriminators(data, RootConfig, source, overridden)  # an unknown model_type, before `${...}` fails
    resolved = interpolate(data, source)
    try:
        config = RootConfig.model_validate(resolved)
    except ValidationError as exc:
        raise validation_to_config_error(exc, RootConfig, resolved, source, overridden) from None
    return config


def dump_config(config: RootConfig) -> str:
    """YAML of the fully resolved config (every key, no `defaults:`), loadable again with `load_config`."""
    data = config.model_dump(mode="json")
    return yaml.dump(
        data, Dumper=_ConfigDumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True
    )


class _ConfigDumper(yaml.SafeDumper):
    """Block-style YAML, except lists of plain values which stay on one line (`betas: [0.9, 0.999]`)."""


def _represent_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flow = all(not isinstance(item, (dict, list)) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_ConfigDumper.add_representer(list, _represent_list)


def resolve_config_path(path: Path | str | None) -> Path:
    """The file to read: the built-in preset for None, the path itself, or a shipped preset of that name."""
    if path is None:
        return builtin_preset_path()
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError("is a directory, not a YAML file", file=str(path), fix="pass the .yaml file inside it")
    if len(path.parts) == 1:
        for folder in preset_dirs():
            for candidate in (folder / path.name, folder / f"{path.name}.yaml"):
                if candidate.is_file():
                    return candidate
    names = sorted({p.stem for folder in preset_dirs() for p in folder.glob("*.yaml")})
    close = did_you_mean(path.stem, names)
    if close:
        raise ConfigError(
            f"config file not found (did you mean the preset `{close}`?)",
            file=str(path),
            fix=f"pass configs/{close}.yaml, or just `{close}`",
        )
    shipped = "; shipped presets: " + ", ".join(names) if names else ""
    raise ConfigError("config file not found", file=str(path), fix=f"check the path{shipped}")


def read_yaml(file: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping (an empty file is an empty mapping)."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the file ({err.strerror})", file=str(file), fix="check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(
            f"YAML syntax error: {problem}",
            file=f"{file}{where}",
            fix="check indentation (spaces, not tabs), colons and quotes on that line",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of keys, got {type(data).__name__}",
            file=str(file),
            fix="start the file with sections like `cluster:`, `runner:`, `actor:`",
        )
    return data


def compose_file(file: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The file's `defaults:` merged in order, then the file's own keys on top (recursively)."""
    file = file.resolve()
    if file in chain:
        cycle = " -> ".join(p.name for p in (*chain, file))
        raise ConfigError(
            f"`defaults:` include themselves in a cycle ({cycle})",
            file=str(file),
            key="defaults",
            fix="remove one of the includes",
        )
    data = read_yaml(file)
    defaults = data.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise ConfigError(
            "`defaults` must be a list of preset files",
            file=str(file),
            key="defaults",
            fix="write e.g. `defaults: [env/maniskill_pick_cube@env.train, model/openvla_oft@actor.model]`",
        )
    merged: dict[str, Any] = {}
    for entry in defaults:
        target, preset = _parse_default_entry(entry, file)
        included = compose_file(find_default(preset, file), (*chain, file))
        for part in reversed(target):
            included = {part: included}
        merged = deep_merge(merged, included)
    return deep_merge(merged, data)


def _parse_default_entry(entry: Any, file: Path) -> tuple[list[str], str]:
    """``"env/maniskill@env.train"`` -> (['env', 'train'], 'env/maniskill'); no ``@`` merges at the top."""
    if not isinstance(entry, str) or not entry.strip():
        raise ConfigError(
            f"`defaults` entry {entry!r} is not a preset name",
            file=str(file),
            key="defaults",
            fix="list relative file names, optionally with `@a.b` to place the file under key a.b",
        )
    preset, _, target = entry.strip().partition("@")
    return ([part for part in target.split(".") if part] if target else []), preset.strip()


def find_default(preset: str, including_file: Path) -> Path:
    """A `defaults:` entry as a file: next to the including file first, then in the shipped preset folders."""
    names = [preset] if preset.endswith((".yaml", ".yml")) else [f"{preset}.yaml", f"{preset}.yml", preset]
    for folder in (including_file.parent, *preset_dirs()):
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    known = _known_presets(including_file.parent)
    close = did_you_mean(preset, known)
    if close:
        what, fix = f"unknown defaults preset `{preset}` (did you mean `{close}`?)", f"write `{close}`"
    else:
        what, fix = f"unknown defaults preset `{preset}`", "check the name; known presets: " + ", ".join(known[:40])
    raise ConfigError(what, file=str(including_file), key="defaults", fix=fix)


def _known_presets(folder: Path) -> list[str]:
    found: set[str] = set()
    for base in (folder, *preset_dirs()):
        for path in base.rglob("*.yaml"):
            found.add(str(path.relative_to(base).with_suffix("")))
    return sorted(found)


def interpolate(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Resolve ``${a.b}`` references (and ``${oc.env:VAR}``) with omegaconf; plain data passes through."""
    if not _has_interpolation(data):
        return data
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        resolved = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or None
        message = str(err).splitlines()[0].strip()
        raise ConfigError(
            f"cannot resolve an interpolation: {message}",
            file=source,
            key=key,
            fix="point `${...}` at an existing dotted key (e.g. ${actor.model.num_action_chunks})",
        ) from None
    return resolved  # type: ignore[return-value]


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_interpolation(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_interpolation(item) for item in value)
    return False

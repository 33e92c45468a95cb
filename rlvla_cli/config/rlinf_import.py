"""`rlvla config import-rlinf`: an RLinf embodied YAML -> an rlvla config that reproduces it, key by key.

Steps: read the recipe and compose its Hydra ``defaults:`` (files next to it, e.g. ``env/libero_spatial.yaml``;
an entry with no file there becomes the rlvla preset of the same name, ``env/libero_spatial@env.train``);
resolve ``${...}`` interpolations; map every leaf key through ``rlinf_keymap.py`` and the value-dependent rules
below (the issue-16 switches that make rlvla do RLinf's arithmetic); record one ``Row`` per key. Keys that
cannot be mapped make the import fail (``ConfigError``, exit 2) after the table is shown.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvla_cli.config.loader import REPO_CONFIGS, read_yaml
from rlvla_cli.config.merge import deep_merge
from rlvla_cli.config.rlinf_keymap import ACTION_HORIZON, DROPPED, OFF_VALUES, RENAMED, UNSUPPORTED
from rlvla_cli.errors import ConfigError

MAPPED, DERIVED, DROP, UNSUP = "mapped", "derived", "dropped", "unsupported"
MODEL_TYPES = ("openvla", "openvla_oft", "openpi")


@dataclass
class Row:
    """One key of the RLinf config: ``status`` in mapped / derived / dropped / unsupported; ``target`` is the
    rlvla key (mapped, derived) and ``note`` the reason or the fix."""

    key: str
    value: Any
    status: str
    target: str = ""
    note: str = ""


@dataclass
class ImportResult:
    """The rlvla config (a mapping, possibly with ``defaults:``) and one row per RLinf key."""

    config: dict[str, Any]
    rows: list[Row]

    @property
    def unsupported(self) -> list[Row]:
        return [row for row in self.rows if row.status == UNSUP]


# ---- reading --------------------------------------------------------------------------------------------------


def compose_rlinf(path: Path, rows: list[Row]) -> tuple[dict[str, Any], list[str]]:
    """The recipe with its ``defaults:`` merged in (the recipe's own keys on top, Hydra's ``_self_`` last).

    Returns (composed mapping, rlvla preset entries for defaults with no file next to the recipe)."""
    data = read_yaml(path)
    defaults = data.pop("defaults", None) or []
    merged: dict[str, Any] = {}
    presets: list[str] = []
    for entry in defaults:
        if isinstance(entry, dict) or (isinstance(entry, str) and entry.startswith("override ")):
            rows.append(Row(f"defaults: {entry}", None, DROP, note="Hydra override (logging); not needed"))
            continue
        name, _, target = str(entry).partition("@")
        group = name.split("/")[0]
        file = path.parent / f"{name}.yaml"
        if file.is_file():
            included, more = compose_rlinf(file, rows)
            presets += more
            for part in reversed([p for p in target.split(".") if p]):
                included = {part: included}
            merged = deep_merge(merged, included)
            rows.append(Row(f"defaults: {entry}", None, MAPPED, note=f"composed from {file.name}"))
        elif group in ("env", "model") and (REPO_CONFIGS / f"{name}.yaml").is_file():
            presets.append(entry)
            rows.append(Row(f"defaults: {entry}", None, MAPPED, f"defaults: {entry}", "rlvla's preset of that name"))
        elif group in ("hybrid_engines", "weight_syncer"):
            rows.append(Row(f"defaults: {entry}", None, DROP, note=_match(DROPPED, target + ".x") or "not needed"))
        else:
            rows.append(Row(f"defaults: {entry}", None, UNSUP, note=f"no {name}.yaml next to the recipe and no "
                            "rlvla preset of that name: copy RLinf's file next to the recipe"))
    return deep_merge(merged, data), presets


def resolve(data: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``${a.b}`` / ``${..x}`` with omegaconf; ``${oc.env:...}`` (Hydra search paths) becomes ''."""
    from omegaconf import OmegaConf

    data = copy.deepcopy(data)
    data.pop("hydra", None)
    text = re.compile(r"\$\{oc\.env:[^}]*\}")

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return text.sub("", value) if isinstance(value, str) else value

    return OmegaConf.to_container(OmegaConf.create(scrub(data)), resolve=True)  # type: ignore[return-value]


def leaves(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``[(dotted key, value)]`` of every non-mapping value (lists are values)."""
    out = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "component_placement":
            out.extend(leaves(value, dotted + "."))
        else:
            out.append((dotted, value))
    return out


def _match(table: dict[str, str], key: str) -> str | None:
    return next((value for pattern, value in table.items() if fnmatch.fnmatchcase(key, pattern)), None)


def _off_value(key: str) -> tuple[bool, Any]:
    for pattern, value in OFF_VALUES.items():
        if fnmatch.fnmatchcase(key, pattern):
            return True, value
    return False, None


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


# ---- mapping --------------------------------------------------------------------------------------------------


def import_rlinf(path: Path | str) -> ImportResult:
    """Convert the RLinf embodied YAML at ``path``; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("RLinf config not found", file=str(path), fix="pass the recipe's .yaml file")
    rows: list[Row] = []
    composed, presets = compose_rlinf(path, rows)
    for key, value in leaves(composed.get("hydra", {}), "hydra."):
        rows.append(Row(key, value, DROP, note=DROPPED["hydra.*"]))
    try:
        data = resolve(composed)
    except Exception as err:  # noqa: BLE001 - omegaconf raises several error types
        raise ConfigError(f"cannot resolve an interpolation: {str(err).splitlines()[0]}", file=str(path),
                          fix="point `${...}` at an existing key of the recipe") from None
    out: dict[str, Any] = {"defaults": presets} if presets else {}
    context = _Context(data)
    for key, value in leaves(data):
        rows.append(_map_key(key, value, context, out))
    for row in context.derived():
        _set(out, row.target, row.value)
        rows.append(row)
    rows += [row for row in context.extra if not row.target]
    return ImportResult(out, rows)


class _Context:
    """What the value-dependent rules need from the whole recipe."""

    def __init__(self, data: dict[str, Any]):
        self.algo = data.get("algorithm", {}) or {}
        train = ((data.get("env") or {}).get("train") or {})
        self.auto_reset = bool(train.get("auto_reset", False))
        self.ignore_terminations = bool(train.get("ignore_terminations", False))
        model = ((data.get("actor") or {}).get("model") or {})
        self.model_type = model.get("model_type")
        self.adv_type = self.algo.get("adv_type", "gae")
        self.betas = [0.9, 0.999]
        self.seen_betas = False
        self.extra: list[Row] = []

    def derived(self) -> list[Row]:
        """Keys RLinf's worker implies even when the recipe does not name them (issue 16)."""
        rows = [row for row in self.extra if row.target]
        one_episode = not self.auto_reset and not self.ignore_terminations
        agg = "episode_weighted" if one_episode else "masked_mean"
        why = ("RLinf's worker passes loss_mask_sum and max_episode_steps without auto_reset: each episode weighs "
               "the same" if one_episode else "RLinf's plain mean (auto_reset / ignore_terminations: no loss_mask_sum)")
        rows.append(Row("(implied)", agg, DERIVED, "algorithm.loss_agg", why))
        if self.adv_type == "gae":
            rlinf_type = self.algo.get("bootstrap_type", "standard")
            boot = rlinf_type if self.auto_reset else "none"
            note = (f"RLinf bootstrap_type {rlinf_type} with auto_reset" if self.auto_reset
                    else "RLinf bootstraps nothing without auto_reset (a time limit is terminal)")
            rows.append(Row("(implied)", boot, DERIVED, "algorithm.bootstrap_type", note))
        rows.append(Row("(implied)", None, DERIVED, "algorithm.logprob_ratio_clamp",
                        "RLinf has no log-ratio clamp for OpenVLA / openpi"))
        if "clip_ratio_c" not in self.algo:
            rows.append(Row("(implied)", None, DERIVED, "algorithm.clip_ratio_c", "RLinf applies no dual clip here"))
        if self.seen_betas:
            rows.append(Row("(implied)", self.betas, DERIVED, "actor.optim.betas", "from adam_beta1 / adam_beta2"))
        return rows


def _map_key(key: str, value: Any, ctx: _Context, out: dict[str, Any]) -> Row:
    special = _special(key, value, ctx)
    if special is not None:
        if special.status in (MAPPED, DERIVED) and special.target:
            _set(out, special.target, special.value)
        return special
    has_off, off = _off_value(key)
    unsupported = _match(UNSUPPORTED, key)
    if unsupported is not None:
        if has_off and value == off:
            return Row(key, value, DROP, note=f"{value!r} is rlvla's behaviour")
        return Row(key, value, UNSUP, note=unsupported)
    renamed = _match(RENAMED, key)
    if renamed is not None:
        target = _env_relative(key, renamed)
        _set(out, target, value)
        return Row(key, value, MAPPED, target)
    dropped = _match(DROPPED, key)
    if dropped is not None:
        if has_off and value != off:
            return Row(key, value, UNSUP, note=f"only {off!r} is supported ({dropped})")
        return Row(key, value, DROP, note=dropped)
    if _schema_has(key, out, ctx):
        _set(out, key, value)
        return Row(key, value, MAPPED, key)
    return Row(key, value, UNSUP, note="rlvla has no such key; remove it or see docs/porting_from_rlinf.md")


def _env_relative(key: str, target: str) -> str:
    """``env.train.x`` + ``init_params.y`` -> ``env.train.init_params.y``; absolute targets pass through."""
    if key.startswith("env.") and not target.startswith(("env.", "actor.", "rollout.", "runner.", "algorithm.")):
        return ".".join(key.split(".")[:2] + [target])
    return target


def _special(key: str, value: Any, ctx: _Context) -> Row | None:
    """The value-dependent rules; None when the key is not one of them."""
    if key in ("actor.model.precision", "rollout.model.precision") and value is None:
        return Row(key, value, DROP, note="null: rlvla's default precision")
    if key.startswith("env.") and key.endswith(".total_num_envs") and value is None:
        return Row(key, value, DROP, note="null in RLinf's env file (set by the recipe)")
    if key == "algorithm.bootstrap_type":
        return Row(key, value, DROP, note="read into algorithm.bootstrap_type (see the implied row)")
    if key == "algorithm.loss_agg_func":
        return Row(key, value, DROP, note="never read by RLinf's embodied worker; see algorithm.loss_agg (implied)")
    if key == "algorithm.normalize_advantages":
        if ctx.adv_type == "grpo":
            return Row(key, False, DERIVED, key, "RLinf never normalises GRPO advantages (its yaml value is unread)")
        return Row(key, True, DERIVED, key, "RLinf always normalises GAE advantages (its yaml value is unread)")
    if key == "algorithm.clip_ratio_c":
        return Row(key, None, DERIVED, key, "RLinf's worker passes clip_ratio_c only for GR00T: no dual clip")
    if key == "algorithm.reward_coef":
        return Row(key, value, MAPPED, "env.train.reward_coef", "RLinf's recipes copy it into env.train")
    if key == "algorithm.entropy_type" and ctx.model_type == "openpi":
        return Row(key, "token_level", DERIVED, key, "RLinf's openpi entropy is a per-element mean whatever "
                   "entropy_type says; rlvla's token_level is that mean")
    if key in ("algorithm.adv_type", "algorithm.loss_type"):
        valid = ("gae", "grpo") if key.endswith("adv_type") else ("actor_critic", "actor")
        if value not in valid:
            return Row(key, value, UNSUP, note=f"rlvla implements {' / '.join(valid)}")
        return None
    if key == "actor.model.model_type" and value not in MODEL_TYPES:
        return Row(key, value, UNSUP, note=f"rlvla runs {', '.join(MODEL_TYPES)} (and its small policy)")
    if key == "actor.model.openpi.config_name":
        pi05 = str(value).startswith("pi05")
        horizon = ACTION_HORIZON.get(str(value))
        if horizon is not None:
            ctx.extra.append(Row(key, horizon, DERIVED, "actor.model.action_horizon", f"{value}'s action horizon"))
        else:
            ctx.extra.append(Row(key, value, DERIVED, "", "unknown config_name: check actor.model.action_horizon"))
        return Row(key, pi05, DERIVED, "actor.model.pi05", f"{value}: {'pi0.5' if pi05 else 'pi0'}")
    if key == "actor.model.attn_implementation" and value == "flash_attention_2":
        return Row(key, "sdpa", DERIVED, key, "rlvla runs eager or sdpa attention (same arithmetic)")
    if key == "actor.model.openpi.noise_method" and value not in ("flow_sde", "flow_noise"):
        return Row(key, value, UNSUP, note="rlvla implements flow_sde and flow_noise (flow_cps / flow_ode: use "
                   "flow_sde with a small noise_level, or evaluate greedily)")
    if key in ("actor.optim.adam_beta1", "actor.optim.adam_beta2"):
        ctx.betas[0 if key.endswith("1") else 1] = value
        ctx.seen_betas = True
        return Row(key, value, DROP, note="read into actor.optim.betas (implied)")
    if key == "actor.model.image_size" and isinstance(value, list):
        if len(set(value)) == 1:
            return Row(key, value[0], MAPPED, key, "square images")
        return Row(key, value, UNSUP, note="rlvla resizes to square images: use [n, n]")
    if key == "actor.model.num_images_in_input":
        if value == 1:
            return Row(key, value, DROP, note="one camera is rlvla's OpenVLA-OFT default")
        return Row(key, True, DERIVED, "actor.model.use_wrist_image", f"{value} images: the wrist camera too")
    if key == "rollout.sampling_params.top_k":
        return Row(key, max(int(value), 0), MAPPED, "rollout.sampling.top_k", "-1 / 0: all tokens")
    if key == "actor.model.vocab_size" and ctx.model_type == "openpi":
        return Row(key, value, DROP, note="read from the checkpoint")
    return None


def _schema_has(key: str, out: dict[str, Any], ctx: _Context) -> bool:
    """Whether rlvla's schema has ``key`` (env and model unions chosen by the recipe's env_type / model_type)."""
    from rlvla_cli.config.introspect import lookup
    from rlvla_cli.config.schema import RootConfig

    env = out.get("env", {}) if isinstance(out.get("env"), dict) else {}
    hint = {"actor": {"model": {"model_type": ctx.model_type}}, "env": {
        name: {"env_type": (env.get(name) or {}).get("env_type")} for name in ("train", "eval")}}
    node, _, _ = lookup(RootConfig, key.split("."), hint)
    return node is not None


def convert_and_validate(path: Path | str, output: Path) -> ImportResult:
    """Import, write the rlvla YAML to ``output`` and load it with rlvla's loader (``ConfigError`` if invalid)."""
    import yaml

    from rlvla_cli.config.loader import load_config

    result = import_rlinf(path)
    if result.unsupported:
        return result
    header = f"# Converted from RLinf's {Path(path).name} by `rlvla config import-rlinf`.\n"
    output.write_text(header + yaml.safe_dump(result.config, sort_keys=False, width=120), encoding="utf-8")
    load_config(output)
    return result

"""Turn schema and YAML problems into one-paragraph `ConfigError`s with did-you-mean suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from rlvla_cli.config.introspect import clean_location, field_description
from rlvla_cli.config.rules import RuleError
from rlvla_cli.errors import ConfigError

# Keys RLinf users will carry over, with where they live here (used when difflib finds nothing close).
RLINF_RENAMES = {
    "adam_beta1": "betas (a pair: [beta1, beta2])",
    "adam_beta2": "betas (a pair: [beta1, beta2])",
    "adam_eps": "eps",
    "sampling_params": "rollout.sampling",
    "use_greedy": "do_sample (inverted)",
    "fsdp_config": "actor.deepspeed",
    "training_backend": "actor.deepspeed (DeepSpeed is the only backend)",
    "model_name": "model_type",
    "simulator_type": "env_type",
    "task_type": "nothing (rlvla only does embodied RL); remove it",
    "group_name": "nothing (worker groups are implicit); remove it",
    "tokenizer": "nothing (the tokenizer comes with actor.model.model_path); remove it",
    "hydra": "nothing (rlvla reads plain YAML with `defaults:`); remove it",
    "channel": "nothing (channels are shared-memory queues set up by the runtime); remove it",
    "reward": "nothing (rewards come from the env); remove it",
    "critic": "actor.model.add_value_head (the critic is a value head on the policy)",
    "openpi": "flat keys under actor.model (noise_method, noise_level, pi05, ...)",
    "action_chunk": "num_action_chunks",
    "num_images_in_input": "num_images (openpi)",
    "kl_beta": "nothing (no KL penalty; PPO clipping only); remove it",
    "loss_agg_func": "nothing (losses are token-mean over the masked batch); remove it",
}


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word`` (difflib ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggestion_text(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` or an empty string."""
    close = did_you_mean(word, candidates)
    return f" (did you mean `{close}`?)" if close else ""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: dict[str, Any], parts: list[str], siblings: list[str]) -> tuple[str, str | None]:
    """(what is wrong, fix) for one pydantic error."""
    kind, ctx = error["type"], error.get("ctx") or {}
    key = parts[-1] if parts else ""
    if kind == "extra_forbidden":
        close = did_you_mean(key, siblings)
        if close:
            return f"unknown key `{key}` (did you mean `{close}`?)", f"rename `{key}` to `{close}`"
        if key in RLINF_RENAMES:
            return f"unknown key `{key}` (RLinf's key; here it is {RLINF_RENAMES[key]})", "use the rlvla key"
        valid = ", ".join(sorted(siblings))
        return f"unknown key `{key}`", f"remove it; valid keys here: {valid}" if valid else "remove it"
    if kind == "missing" and key.isdigit():
        return f"too few items: item {int(key) + 1} is missing", "give every item, e.g. [0.9, 0.999] for a pair"
    if kind == "missing":
        return "required key is missing", f"add `{key}`"
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag, name = ctx.get("tag"), str(ctx.get("discriminator", "")).strip("'")
        return (
            f"`{name}: {tag}` is not one of {', '.join(tags)}{suggestion_text(str(tag), tags)}",
            f"set `{name}` to one of {', '.join(tags)}",
        )
    if kind == "union_tag_not_found":
        name = str(ctx.get("discriminator", "")).strip("'")
        return f"`{name}` is missing, so the kind of section is unknown", f"add `{name}: ...` to this section"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = [o.strip(" '\"") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        got = error.get("input")
        return f"{_short(got)} is not allowed{suggestion_text(str(got), options)}", f"use one of {expected}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "value_error" or kind == "assertion_error":
        return message, None
    got = error.get("input")
    if isinstance(got, (dict, list)) and kind not in ("dict_type", "list_type", "tuple_type"):
        return message, None
    return f"got {_short(got)}: {message[0].lower() + message[1:]}", None


def validation_to_config_error(
    exc: ValidationError,
    root: type[BaseModel],
    data: dict[str, Any],
    file: str,
    overridden: dict[str, str] | None = None,
) -> ConfigError:
    """One `ConfigError` for a pydantic ``ValidationError``: first problem in full, the others listed after it.

    ``overridden`` maps dotted keys set on the command line to the override text, so errors there name the
    override instead of the file.
    """
    overridden = overridden or {}
    described = []
    for error in exc.errors(include_url=False):
        parts, siblings = clean_location(root, tuple(error["loc"]))
        rule = (error.get("ctx") or {}).get("error")
        if isinstance(rule, RuleError):
            described.append((rule.key, rule.message, rule.fix, rule.key.split(".")))
            continue
        if any(entry[0] == ".".join(parts) for entry in described):
            continue  # a plain union (`str | int`) reports once per member; the first says enough
        what, fix = _describe(error, parts, siblings)
        if parts and parts[-1].isdigit() and what.startswith("too few items"):
            parts = parts[:-1]  # blame the list, not the missing position
        if any(entry[1] == what for entry in described):
            continue  # env.eval inherits from env.train, so one mistake shows up twice
        described.append((".".join(parts), what, fix, parts))
    key, what, fix, parts = described[0]
    if error_fix := _missing_hint(described[0], root, data):
        fix = error_fix
    source = file
    for dotted, text in overridden.items():
        last = dotted.rsplit(".", 1)[-1]
        inside = key == dotted or key.startswith(dotted + ".")
        if inside or (dotted.startswith(key + ".") and f"`{last}" in what):
            source = f"override `{text}`"
    message = what
    if len(described) > 1:
        others = "; ".join(f"`{k or '<root>'}`: {w}" for k, w, _, _ in described[1:4])
        more = f" (and {len(described) - 4} more)" if len(described) > 4 else ""
        message += f". Also: {others}{more}"
    return ConfigError(message, file=source, key=key or "<root>", fix=fix)


def _missing_hint(entry: tuple, root: type[BaseModel], data: dict[str, Any]) -> str | None:
    key, what, fix, parts = entry
    if what != "required key is missing":
        return None
    description = field_description(root, parts, data)
    return f"add `{key}` ({description.rstrip('.')})" if description else fix

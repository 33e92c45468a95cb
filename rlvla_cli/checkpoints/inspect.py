"""``inspect_checkpoint(path, model_cfg)``: the report ``rlvla inspect-checkpoint`` prints (docs/checkpoints.md).

Reads file names, JSON files and tensor headers only. The model config it checks against is, in order: the
one given (``--config``'s ``actor.model``), the ``rlvla_model`` saved next to rlvla's own weights, the
``config.yaml`` of a run checkpoint, or the family's defaults (read off the checkpoint); its paths are then
pointed at the directory exactly as ``rlvla eval --checkpoint`` does (``evaluation/checkpoint_loading.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvla_cli.checkpoints import adapter as adapters
from rlvla_cli.checkpoints.families import ADAPTER_CONFIG, OFT_ACTION_HEAD_GLOB, OFT_PROPRIO_GLOB, Family, classify
from rlvla_cli.checkpoints.groups import group_of, ignore_reason, strip_wrappers
from rlvla_cli.checkpoints.load_check import build_meta_policy, check_load
from rlvla_cli.checkpoints.metadata import TensorMeta, dtype_counts, torch_file_metadata, weights_metadata
from rlvla_cli.checkpoints.report import Group, Problem, Report
from rlvla_cli.errors import UserError

_NORM_DEPTH = 4  # find_norm_stats looks this deep for norm_stats.json


def _read_config(directory: Path, report: Report) -> dict | None:
    path = directory / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        report.problems.append(Problem(f"not valid JSON ({err})", file=str(path), fix="re-download the checkpoint"))
        return None
    return data if isinstance(data, dict) else None


def _openpi_variant(keys: list[str]) -> bool | None:
    from rlvla_cli.models.openpi.checkpoint import PI0_MARKER, PI05_MARKER

    return True if PI05_MARKER in keys else False if PI0_MARKER in keys else None


def openvla_stats_keys(directory: Path, config: dict | None) -> dict[str, list[str]]:
    """Dataset keys of ``config.json`` ``norm_stats`` and of ``dataset_statistics.json``, by source."""
    out: dict[str, list[str]] = {}
    if config and isinstance(config.get("norm_stats"), dict):
        out["config.json norm_stats"] = sorted(config["norm_stats"])
    path = directory / "dataset_statistics.json"
    if path.is_file():
        try:
            out["dataset_statistics.json"] = sorted(json.loads(path.read_text()))
        except (json.JSONDecodeError, AttributeError, TypeError):
            out["dataset_statistics.json"] = []
    return out


def openpi_asset_ids(directory: Path) -> list[str]:
    """Asset ids holding a ``norm_stats.json``, as the loader sees them (``norm_stats.norm_stats_ids``)."""
    from rlvla_cli.models.openpi.norm_stats import norm_stats_ids

    return norm_stats_ids(directory)


def openpi_size(tensors: dict[str, TensorMeta]) -> str:
    """The openpi size preset whose Gemma width matches the stored language model (``full`` if none does)."""
    from rlvla_cli.models.openpi.presets import PRESETS

    suffix = "paligemma.model.language_model.layers.0.input_layernorm.weight"
    width = next((m.shape[0] for k, m in tensors.items() if k.endswith(suffix)), None)
    return next((name for name, dims in PRESETS.items() if dims.vlm.width == width), "full")


def default_model_config(family: Family, directory: Path, config: dict | None, tensors: dict[str, TensorMeta]):
    """The config a user would most likely write for this family (used without ``--config``)."""
    from rlvla_cli.config.model import OpenPIModelConfig, OpenVLAModelConfig, OpenVLAOFTModelConfig

    if family.name == "rlvla_policy":
        from pydantic import TypeAdapter

        from rlvla_cli.config.model import ModelConfig

        return TypeAdapter(ModelConfig).validate_python(config["rlvla_model"])
    if "openpi" in family.model_types:
        horizon = (config or {}).get("action_horizon") or (config or {}).get("chunk_size") or 10
        ids = openpi_asset_ids(directory)
        return OpenPIModelConfig(model_path=str(directory), pi05=bool(family.pi05), size=openpi_size(tensors),
                                 action_horizon=int(horizon),
                                 num_action_chunks=min(5, int(horizon)),
                                 norm_stats_key=ids[0] if len(ids) > 1 else None)
    stats = sorted({k for keys in openvla_stats_keys(directory, config).values() for k in keys})
    unnorm = None if len(stats) <= 1 else ("bridge_orig" if "bridge_orig" in stats else stats[0])
    common = dict(model_path=str(directory), unnorm_key=unnorm,
                  add_value_head=any(k.startswith("value_head.") for k in map(strip_wrappers, tensors)))
    if family.name != "openvla_oft":
        return OpenVLAModelConfig(**common)
    proprio = sorted(directory.glob(OFT_PROPRIO_GLOB))
    state_dim = next((m.shape[1] for m in torch_file_metadata(proprio[-1]) if m.name.endswith("fc1.weight")), 8) \
        if proprio else 8
    return OpenVLAOFTModelConfig(**common, use_proprio=bool(proprio), state_dim=state_dim)


def _choose_config(family: Family, directory: Path, config: dict | None, tensors, model_cfg, report: Report):
    """The model config to check, with its paths on ``directory``; None (and a problem) when it cannot apply."""
    if family.name == "rlvla_policy" or model_cfg is None:
        cfg = default_model_config(family, directory, config, tensors)
        report.checked_with = ("the saved rlvla_model" if family.name == "rlvla_policy"
                               else f"the family's defaults ({_settings(cfg)})")
    else:
        cfg = model_cfg
        if family.model_types and cfg.model_type not in family.model_types:
            report.problems.append(Problem(
                f"the config's model_type is {cfg.model_type!r} but {directory} is {family.label}",
                file=str(directory), key="actor.model.model_type",
                fix=f"set actor.model.model_type to one of {list(family.model_types)} (or point model_path elsewhere)"))
            return None
        if cfg.model_path and Path(cfg.model_path).resolve() != directory.resolve():
            report.notes.append(f"the config's model_path is {cfg.model_path}; {directory} was inspected in its place")
    report.model_type = cfg.model_type
    return cfg.model_copy(update={"model_path": str(directory)})


def _settings(cfg) -> str:
    keys = ("model_type", "pi05", "unnorm_key", "norm_stats_key", "use_proprio", "state_dim", "add_value_head",
            "action_horizon")
    return ", ".join(f"{k}={getattr(cfg, k)!r}" for k in keys if hasattr(cfg, k) and getattr(cfg, k) is not None)


def _describe_files(directory: Path, tensors: dict[str, TensorMeta], report: Report) -> None:
    per_file: dict[str, int] = {}
    for m in tensors.values():
        per_file[m.file] = per_file.get(m.file, 0) + 1
    for name, n in sorted(per_file.items()):
        report.files.append({"name": name, "holds": "weights", "tensors": n})
    side = {"config.json": "model config", "model.safetensors.index.json": "shard index",
            "dataset_statistics.json": "action statistics (unnorm keys)", ADAPTER_CONFIG: "LoRA config",
            "heads.safetensors": "rlvla heads (value head, log-std)", "tokenizer.json": "tokenizer",
            "tokenizer.model": "tokenizer (sentencepiece)"}
    for name, what in side.items():
        if (directory / name).is_file():
            report.files.append({"name": name, "holds": what})
    for path in sorted(directory.glob(OFT_PROPRIO_GLOB)) + sorted(directory.glob(OFT_ACTION_HEAD_GLOB)):
        report.files.append({"name": path.name, "holds": "OFT head (torch file)"})
    for asset in openpi_asset_ids(directory):
        report.files.append({"name": "norm_stats.json" if asset == "." else f"{asset}/norm_stats.json",
                             "holds": "openpi norm stats"})


def _map_groups(family: Family, tensors: dict[str, TensorMeta], mapped: dict, extra: dict, report: Report) -> None:
    kind = "openpi" if "openpi" in family.model_types else "openvla" if "openvla" in family.model_types else "weights"
    for key, meta in tensors.items():  # no mapping (the model could not be built): nothing counts as loaded
        ours = mapped.get(key)
        report.add_group(group_of(key, kind), meta.numel, loaded=ours is not None)
        if mapped and ours is None:
            report.ignored.setdefault(ignore_reason(key), []).append(key)
    for name, meta in extra.items():
        report.add_group(group_of(name, kind), meta.numel, loaded=True)


def _oft_action_head(directory: Path, report: Report) -> list[TensorMeta]:
    """OFT's continuous-head files (``openvla_files.continuous_head_files``) counted as a group; the builder
    refuses such a directory, and its error is the problem reported."""
    from rlvla_cli.models.openvla_files import continuous_head_files

    metas = [m for path in continuous_head_files(directory) for m in torch_file_metadata(path)]
    for m in metas:
        report.add_group("action head (continuous)", m.numel, loaded=False)
    return metas


def _openpi_assets(directory: Path, cfg, family: Family, report: Report) -> None:
    from rlvla_cli.models.openpi.norm_stats import find_norm_stats, load_norm_stats
    from rlvla_cli.models.openpi.state_tokens import load_tokenizer

    report.norm_stats["openpi norm_stats.json asset ids"] = openpi_asset_ids(directory)
    try:
        path = find_norm_stats(cfg.model_path, cfg.norm_stats_path, cfg.norm_stats_key)
        stats = load_norm_stats(path)
    except UserError as err:
        report.problems.append(Problem.from_error(err))
        return
    if path is None:
        where = "LeRobot keeps its statistics in processor files, which rlvla does not read; " \
            if family.name == "lerobot_pi" else ""
        report.problems.append(Problem(
            f"no norm_stats.json under {directory}: {where}states and actions would pass un-normalised",
            file=str(directory), key="actor.model.norm_stats_path",
            fix="set norm_stats_path to the openpi norm_stats.json of the data this model was trained on"))
    elif stats.actions is not None and stats.actions.mean.shape[-1] < cfg.action_dim:
        report.problems.append(Problem(
            f"the action statistics cover {stats.actions.mean.shape[-1]} dims but action_dim is {cfg.action_dim}",
            file=str(path), key="actor.model.action_dim", fix="use the norm stats of this robot / dataset"))
    else:
        report.notes.append(f"norm stats used: {path}")
    try:
        load_tokenizer(cfg.model_path, cfg.tokenizer_path)
    except UserError as err:
        report.problems.append(Problem.from_error(err))
    saved = (report_config := _json(directory / "config.json")) and report_config.get("action_horizon")
    if saved and int(saved) != cfg.action_horizon:
        report.notes.append(f"config.json says action_horizon {saved} (trained with); the config uses "
                            f"{cfg.action_horizon}")


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def inspect_weights(directory: Path, model_cfg: Any = None) -> Report:
    """Report on a model directory (not an adapter): family, files, groups, ignored keys, statistics, load check."""
    report = Report(str(directory), "unknown", "")
    config = _read_config(directory, report)
    try:
        tensors = weights_metadata(directory)
    except UserError as err:
        tensors = {}
        report.problems.append(Problem.from_error(err))
    keys = [strip_wrappers(k) for k in tensors]
    files = sorted(p.name for p in directory.iterdir())
    family = classify(files, config, keys, _openpi_variant(keys))
    report.family, report.family_label, report.evidence = family.name, family.label, family.evidence
    if family.name == "unknown":
        if tensors or not report.problems:
            report.problems.append(Problem(
                f"{directory} is not a checkpoint rlvla knows ({family.evidence[0]})", file=str(directory),
                key="actor.model.model_path", fix="see docs/checkpoints.md for the layouts rlvla reads"))
        return report
    _describe_files(directory, tensors, report)
    cfg = _choose_config(family, directory, config, tensors, model_cfg, report)
    report.total_params = sum(m.numel for m in tensors.values())
    report.dtypes = dtype_counts(list(tensors.values()))
    if "openpi" not in family.model_types:
        report.norm_stats.update(openvla_stats_keys(directory, config))
    if cfg is None:
        _map_groups(family, tensors, {}, {}, report)
        return report
    candidates = sorted({k for keys in report.norm_stats.values() for k in keys})
    load = check_load(cfg, directory, tensors, candidates)
    _map_groups(family, tensors, load.mapped, load.extra, report)
    if load.error is not None:
        report.problems.append(Problem.from_error(load.error))
    if cfg.model_type == "openpi":
        _openpi_assets(directory, cfg, family, report)
    if cfg.model_type in ("openvla", "openvla_oft"):
        _oft_action_head(directory, report)
        if getattr(cfg, "unnorm_key", None):
            where = [s for s, keys in report.norm_stats.items() if cfg.unnorm_key in keys]
            report.notes.append(f"unnorm_key {cfg.unnorm_key!r} found in {', '.join(where) or 'no statistics file'}")
    extra = list(load.extra.values())
    report.total_params += sum(m.numel for m in extra)
    report.dtypes = dtype_counts(list(tensors.values()) + extra)
    return report


def inspect_adapter(adapter_dir: Path, model_cfg: Any = None) -> Report:
    """A peft adapter: its config, its base (the config's model_path, else its own base_model_name_or_path when
    that is a local directory), whether it names that base, and whether its tensors fit the base's model."""
    report = Report(str(adapter_dir), "peft_adapter", "")
    config = _read_config(adapter_dir, report)
    summary, tensors = adapters.adapter_summary(adapter_dir)
    family = classify(sorted(p.name for p in adapter_dir.iterdir()), config, [])
    report.family_label, report.evidence, report.adapter = family.label, family.evidence, summary
    report.total_params = sum(m.numel for m in tensors.values())
    report.dtypes = dtype_counts(list(tensors.values()))
    report.groups["LoRA adapters"] = Group(len(tensors), report.total_params, len(tensors))
    if config and "rlvla_model" in config:  # rlvla's own LoRA policy carries its model config (as eval uses it)
        from pydantic import TypeAdapter

        from rlvla_cli.config.model import ModelConfig

        saved = TypeAdapter(ModelConfig).validate_python(config["rlvla_model"])
        model_cfg = saved.model_copy(update={"model_path": (model_cfg.model_path if model_cfg else None)
                                             or saved.model_path})
    wanted = summary["base_model_name_or_path"]
    base = (model_cfg.model_path if model_cfg is not None else None) or (wanted if wanted and Path(wanted).is_dir()
                                                                          else None)
    if base is None or not Path(base).is_dir():
        report.problems.append(Problem(
            f"the adapter's base {base or wanted!r} is not a local directory, so nothing can be checked against it",
            file=str(adapter_dir / ADAPTER_CONFIG), key="actor.model.model_path",
            fix="pass --config with actor.model.model_path set to the base model's directory"))
        return report
    base_dir = Path(base)
    report.base = inspect_weights(base_dir, model_cfg)
    pair = adapters.pairing(summary, base_dir)
    summary["base_pairing"] = pair.status
    if pair.status == "unknown":
        report.notes.append(f"the adapter names its base {pair.adapter_base!r}, the base is "
                            f"{', '.join(pair.base_names)}: check that they are the same model")
    elif pair.status == "unnamed":
        report.notes.append("adapter_config.json names no base_model_name_or_path: the pairing cannot be checked")
    if report.base.all_problems() or not report.base.model_type:
        return report
    cfg = model_cfg if model_cfg is not None else default_model_config(
        classify(sorted(p.name for p in base_dir.iterdir()), _json(base_dir / "config.json"), []),
        base_dir, _json(base_dir / "config.json"), {})
    cfg = cfg.model_copy(update={"model_path": str(base_dir), "is_lora": True, "lora_path": str(adapter_dir)})
    report.model_type, report.checked_with = cfg.model_type, report.base.checked_with
    try:
        policy = build_meta_policy(cfg)
    except UserError as err:
        report.problems.append(Problem.from_error(err))
        return report
    plan = adapters.adapter_plan(policy, cfg.model_type, sorted(tensors))
    for key, reason in plan.dropped.items():
        report.ignored.setdefault(reason, []).append(key)
    report.groups["LoRA adapters"].loaded = len(plan.load) + len(plan.elsewhere)
    report.problems += adapters.fit_problems(policy, adapters.lora_module(policy, cfg.model_type), plan, tensors,
                                             adapter_dir)
    return report


def inspect_checkpoint(path: str | Path, model_cfg: Any = None) -> Report:
    """Report on ``path``: a run directory or checkpoint (its newest ``policy/`` against its ``config.yaml``), a
    LoRA adapter, or a model directory. ``model_cfg``: ``actor.model`` of ``--config`` (None: see module doc)."""
    from rlvla_cli.evaluation.checkpoint_loading import resolve_checkpoint

    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"{path} is not a directory", key="DIR", fix="pass a checkpoint or model directory")
    notes = []
    try:  # eval's own resolution: a run directory -> its newest checkpoint -> policy/ + config.yaml
        resolved = resolve_checkpoint(path)
    except UserError:
        resolved = None  # not a run / model directory: inspect_weights says what is there
    if resolved is not None and resolved.kind == "checkpoint":
        notes.append(f"rlvla run checkpoint (step {resolved.step}): inspecting {resolved.weights}")
        if model_cfg is None and resolved.config_file is not None:
            from rlvla_cli.config.loader import load_config

            model_cfg = load_config(resolved.config_file, []).actor.model
            notes.append(f"checked against {resolved.config_file}")
        path = resolved.weights
    if (path / ADAPTER_CONFIG).is_file():
        report = inspect_adapter(path, model_cfg)
    else:
        report = inspect_weights(path, model_cfg)
    report.notes = notes + report.notes
    return report

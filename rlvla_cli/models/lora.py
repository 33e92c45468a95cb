"""LoRA through peft, in place (``peft.inject_adapter_in_model``), saved and loaded in peft's adapter format.

The adapters go into one sub-module (OpenVLA: the HF-named ``vla`` module; small: the policy itself); every
other parameter is frozen except the value head, which always trains. On disk (``save_adapter``):
``adapter_config.json`` (peft ``LoraConfig``) + ``adapter_model.safetensors`` with peft's key names
``base_model.model.<module path>.lora_A.weight`` -- the names a ``PeftModel`` around the same module writes,
so RLinf / OpenVLA adapters load here and ours load with ``PeftModel.from_pretrained``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model
from safetensors.torch import save_file
from torch import nn

from rlvla_cli.errors import AssetError, ConfigError
from rlvla_cli.models.checkpoint import read_json

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_ADAPTER = "default"


def lora_config_from(model_cfg, default_targets: list[str], base_path: str | None = None) -> LoraConfig:
    """peft ``LoraConfig`` from the shared model keys (rank, alpha (None: = rank), dropout, targets)."""
    alpha = model_cfg.lora_alpha if model_cfg.lora_alpha is not None else model_cfg.lora_rank
    return LoraConfig(
        r=model_cfg.lora_rank,
        lora_alpha=alpha,
        lora_dropout=model_cfg.lora_dropout,
        target_modules=list(model_cfg.lora_target_modules or default_targets),
        init_lora_weights="gaussian",
        base_model_name_or_path=base_path,
    )


def inject_lora(module: nn.Module, config: LoraConfig) -> None:
    """Add adapters to ``module`` in place and freeze every non-adapter parameter of it."""
    try:
        inject_adapter_in_model(config, module, adapter_name=_ADAPTER)
    except ValueError as err:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"LoRA could not be applied: {err}", key="actor.model.lora_target_modules",
                          fix="name modules that exist in this architecture, or leave it null for the default") from err
    for name, param in module.named_parameters():
        param.requires_grad = "lora_" in name


def adapter_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors of ``module`` under peft's on-disk names."""
    out = {}
    for name, param in module.named_parameters():
        if "lora_" in name:
            out[_PREFIX + name.replace(f".{_ADAPTER}.", ".")] = param.detach().cpu().contiguous()
    return out


def save_adapter(module: nn.Module, config: LoraConfig, directory: str | Path) -> None:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` (peft format) for ``module``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(adapter_state_dict(module), str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def read_adapter_config(directory: str | Path) -> dict:
    """The saved ``adapter_config.json`` (rank, alpha, target modules) of an adapter directory."""
    return read_json(Path(directory) / ADAPTER_CONFIG, "the LoRA adapter config")


@dataclass
class AdapterPlan:
    """What ``load_adapter`` does with each stored adapter tensor. ``load``: on-disk name (peft's
    ``base_model.model.<module>.lora_A.weight``) -> parameter name in the module (``<module>.lora_A.default.weight``);
    ``dropped``: on-disk name -> why it is not loaded (logged, counted); ``elsewhere``: on-disk name -> the name
    relative to the policy for tensors a caller applies itself (e.g. a LoRA on a head outside the adapted module);
    ``absent``: adapter parameters of the module the file does not have (filled in by ``load_adapter``)."""

    load: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    elsewhere: dict[str, str] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)

    def drop_summary(self) -> str:
        """One line: how many tensors were dropped, per reason."""
        counts: dict[str, int] = {}
        for reason in self.dropped.values():
            counts[reason] = counts.get(reason, 0) + 1
        return "; ".join(f"{n} x {reason}" for reason, n in sorted(counts.items()))


def peft_param_name(key: str) -> str:
    """peft's on-disk adapter name -> the parameter name inside the adapted module (adapter ``default``)."""
    name = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
    for part in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"):
        name = name.replace(f".{part}.weight", f".{part}.{_ADAPTER}.weight")
    return name


def default_adapter_plan(keys: list[str]) -> AdapterPlan:
    """Every stored tensor loads under ``peft_param_name``."""
    return AdapterPlan(load={k: peft_param_name(k) for k in keys})


def read_adapter_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``adapter_model.safetensors`` under their on-disk names."""
    from safetensors.torch import load_file

    path = Path(directory) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise AssetError(f"{path} is missing", key="actor.model.lora_path",
                         fix="point lora_path at a directory written by peft (adapter_model.safetensors)")
    return load_file(str(path))


@dataclass
class AdapterFit:
    """How stored adapter tensors fit an injected module (names are parameter names of the module)."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]  # "name: adapter (shape) vs model (shape)"
    absent: list[str]  # adapters the file lacks whose B starts at zero: peft leaves them as the identity

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def adapter_fit(params: dict[str, tuple[int, ...]], loaded: dict[str, tuple[int, ...]],
                b_starts_at_zero: Callable[[str], bool]) -> AdapterFit:
    """Pure check of ``loaded`` (parameter name -> stored shape, from an ``AdapterPlan``) against the module's
    ``params`` (every parameter name -> shape). Expected: every ``lora_`` parameter, plus the
    ``<module>.base_layer.weight`` peft saves for an adapted embedding / lm_head (``save_embedding_layers``, on
    when lm_head is a target as in RLinf's defaults; PeftModel.from_pretrained loads it). A module the file has
    no tensor for at all stays at peft's init when ``b_starts_at_zero(name of its B)``: the identity, as
    PeftModel.from_pretrained leaves it (e.g. a suffix target "proj" also matching a Conv2d the saving run did
    not adapt)."""
    own = {n: s for n, s in params.items() if "lora_" in n}
    own.update({n: params[n] for n in loaded if ".base_layer." in n and n in params})
    missing = sorted(n for n in set(own) - set(loaded) if "lora_" in n)
    absent = [n for n in missing if _absent_noop(n, own, loaded, b_starts_at_zero)]
    return AdapterFit(
        missing=sorted(set(missing) - set(absent)),
        unexpected=sorted(set(loaded) - set(own)),
        mismatched=[f"{n}: adapter {tuple(loaded[n])} vs model {tuple(own[n])}" for n in sorted(loaded)
                    if n in own and tuple(loaded[n]) != tuple(own[n])],
        absent=absent,
    )


def _absent_noop(name: str, own: dict, loaded: dict, b_starts_at_zero: Callable[[str], bool]) -> bool:
    pair = [name] + [name.replace(a, b) for a, b in ((".lora_A.", ".lora_B."), (".lora_B.", ".lora_A."),
                                                     (".lora_embedding_A.", ".lora_embedding_B."),
                                                     (".lora_embedding_B.", ".lora_embedding_A."))]
    b_names = [n for n in pair if ("lora_B" in n or "lora_embedding_B" in n) and n in own]
    return not any(n in loaded for n in pair) and bool(b_names) and all(b_starts_at_zero(n) for n in b_names)


def load_adapter(
    module: nn.Module, directory: str | Path, plan_fn: Callable[[list[str]], AdapterPlan] = default_adapter_plan
) -> tuple[AdapterPlan, dict[str, torch.Tensor]]:
    """Copy a saved peft adapter into ``module`` (already injected with a matching config). ``plan_fn`` decides
    which stored tensors load where (and which are dropped, with a reason); ``adapter_fit`` decides whether they
    fit, else ``AssetError`` lists the first differences. Returns the plan (``absent`` filled in) and the stored
    tensors (for the caller's ``plan.elsewhere``)."""
    stored = read_adapter_tensors(directory)
    plan = plan_fn(sorted(stored))
    params = dict(module.named_parameters())
    loaded = {name: stored[key] for key, name in plan.load.items()}
    fit = adapter_fit({n: tuple(p.shape) for n, p in params.items()}, {n: tuple(t.shape) for n, t in loaded.items()},
                      lambda n: not params[n].any())
    plan.absent = fit.absent
    if any("lora_" in n for n in params) and not loaded:
        raise AssetError(f"LoRA adapter {directory} holds no tensor for this model's adapted modules "
                         f"({len(plan.dropped)} dropped, {len(plan.elsewhere)} for other heads)",
                         key="actor.model.lora_path", fix="point lora_path at the adapter trained for this model")
    if not fit.ok:
        raise AssetError(
            f"LoRA adapter {directory} does not fit this model: {len(fit.missing)} missing {fit.missing[:3]}, "
            f"{len(fit.unexpected)} unexpected {fit.unexpected[:3]}, {len(fit.mismatched)} shape mismatches "
            f"{fit.mismatched[:3]}",
            key="actor.model.lora_path",
            fix="use the adapter's own lora_rank / lora_target_modules (see its adapter_config.json)",
        )
    with torch.no_grad():
        for name, tensor in loaded.items():
            params[name].copy_(tensor.to(params[name].dtype))
    return plan, stored


HEADS_WEIGHTS = "heads.safetensors"


def lora_config_for(model_cfg, default_targets: list[str], base_path: str | None = None) -> LoraConfig:
    """The adapter's own saved config when ``lora_path`` is set (its rank / targets win), else the config's."""
    if model_cfg.lora_path:
        read_adapter_config(model_cfg.lora_path)  # clear error when absent
        config = LoraConfig.from_pretrained(model_cfg.lora_path)
        config.inference_mode = False
        return config
    return lora_config_from(model_cfg, default_targets, base_path)


def save_heads(policy: nn.Module, directory: str | Path) -> None:
    """With LoRA, the trainable tensors outside the adapters (value head, action log-std) -> heads.safetensors."""
    params = policy.named_parameters()
    heads = {n: p.detach().cpu().contiguous() for n, p in params if p.requires_grad and "lora_" not in n}
    if heads:
        save_file(heads, str(Path(directory) / HEADS_WEIGHTS), metadata={"format": "pt"})


def load_heads(policy: nn.Module, directory: str | Path) -> None:
    """Inverse of ``save_heads``; absent file = heads stay as built (e.g. a fresh value head on an RLinf adapter)."""
    from safetensors.torch import load_file

    path = Path(directory) / HEADS_WEIGHTS
    if not path.is_file():
        return
    own = dict(policy.named_parameters())
    modules, skipped = {name.split(".")[0] for name in own}, set()
    with torch.no_grad():
        for name, tensor in load_file(str(path)).items():
            if name.split(".")[0] not in modules:
                # a head this configuration does not build: pi0's flow-noise head in a flow-SDE policy started
                # from the same SFT checkpoint (flow-SDE injects fixed noise, it has no learned noise head)
                skipped.add(name.split(".")[0])
                continue
            if name not in own or own[name].shape != tensor.shape:
                raise AssetError(f"{path}: tensor {name} {tuple(tensor.shape)} does not fit this model",
                                 key="actor.model.lora_path", fix="use the model config the adapter was trained with")
            own[name].copy_(tensor.to(own[name].dtype))
    if skipped:
        logger.warning("%s: %s not loaded (not part of this model's configuration)", path, ", ".join(sorted(skipped)))

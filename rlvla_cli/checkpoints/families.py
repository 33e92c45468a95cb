"""Which checkpoint family a directory is, from its file names, its config.json and its tensor names.

The families and their layouts are listed in docs/checkpoints.md. ``classify`` is a pure function of what
``inspect`` has already read (no file access here), so each rule is testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADAPTER_CONFIG = "adapter_config.json"
OFT_PROPRIO_GLOB = "proprio_projector--*_checkpoint.pt"
OFT_ACTION_HEAD_GLOB = "action_head--*_checkpoint.pt"
_OPENPI_MARKERS = ("paligemma_with_expert.",)
_OPENVLA_MODEL_TYPES = {"openvla", "prismatic"}


@dataclass(frozen=True)
class Family:
    """``name``: the family id (see ``LABELS``); ``model_types``: the ``actor.model.model_type`` values that
    load it; ``evidence``: the files / keys that decided it; ``pi05``: for openpi weights, the variant."""

    name: str
    model_types: tuple[str, ...]
    evidence: list[str] = field(default_factory=list)
    pi05: bool | None = None

    @property
    def label(self) -> str:
        return LABELS[self.name]


LABELS = {
    "openvla": "OpenVLA / OpenVLA-OFT (Hugging Face layout; model_type picks which)",
    "openvla_oft": "OpenVLA-OFT (moojink/openvla-oft layout, extra head files)",
    "rlinf_openvla": "RLinf OpenVLA / OpenVLA-OFT checkpoint with a value head",
    "rlvla_openvla": "rlvla-saved OpenVLA / OpenVLA-OFT weights",
    "peft_adapter": "peft LoRA adapter",
    "openpi_converted": "pi0 / pi0.5 converted by openpi (JAX -> PyTorch)",
    "rlinf_openpi": "RLinf pi0 / pi0.5 model (openpi PyTorch state dict)",
    "lerobot_pi": "LeRobot pi0 / pi0.5 policy",
    "rlvla_policy": "rlvla-saved policy (config.json with rlvla_model)",
    "unknown": "not a checkpoint rlvla knows",
}


def _has(files: list[str], pattern: str) -> list[str]:
    import fnmatch

    return sorted(f for f in files if fnmatch.fnmatch(f, pattern))


def classify(files: list[str], config: dict | None, keys: list[str], pi05: bool | None = None) -> Family:
    """``files``: names in the directory (top level); ``config``: its config.json (None if absent);
    ``keys``: stored tensor names with wrapper prefixes stripped; ``pi05``: the openpi variant when known."""
    config = config or {}
    if ADAPTER_CONFIG in files:
        saved = " and config.json rlvla_model (an rlvla LoRA policy)" if "rlvla_model" in config else ""
        return Family("peft_adapter", (), [f"{ADAPTER_CONFIG} + adapter_model.safetensors{saved}"])
    if "rlvla_model" in config:
        model_type = str(config["rlvla_model"].get("model_type", "?"))
        return Family("rlvla_policy", (model_type,), [f"config.json rlvla_model.model_type = {model_type}"], pi05)
    if config.get("model_type") in _OPENVLA_MODEL_TYPES:
        why = [f"config.json model_type = {config['model_type']}, timm_model_ids = {config.get('timm_model_ids')}"]
        extras = _has(files, OFT_PROPRIO_GLOB) + _has(files, OFT_ACTION_HEAD_GLOB)
        value = [k for k in keys if k.startswith("value_head.")]
        if "rlvla_vision_dims" in config:
            return Family("rlvla_openvla", ("openvla", "openvla_oft"), why + ["config.json rlvla_vision_dims"])
        if value:
            return Family("rlinf_openvla", ("openvla", "openvla_oft"), why + [f"{len(value)} value_head.* tensors"])
        if extras:
            return Family("openvla_oft", ("openvla_oft",), why + [f"OFT head files: {', '.join(extras)}"])
        return Family("openvla", ("openvla", "openvla_oft"), why)
    if any(k.startswith(_OPENPI_MARKERS) for k in keys):
        variant = {True: "pi0.5 (time_mlp_* tensors)", False: "pi0 (state_proj tensors)", None: "variant unknown"}
        why = [f"paligemma_with_expert.* tensors; {variant[pi05]}"]
        if config.get("type") in {"pi0", "pi05", "pi0fast"}:
            return Family("lerobot_pi", ("openpi",), why + [f"config.json type = {config['type']} (LeRobot)"], pi05)
        if "paligemma_variant" in config:
            return Family("openpi_converted", ("openpi",), why + ["config.json paligemma_variant (openpi's converter)"],
                          pi05)
        return Family("rlinf_openpi", ("openpi",), why, pi05)
    seen = ", ".join(sorted(files)[:8]) or "nothing"
    return Family("unknown", (), [f"found {seen}"])

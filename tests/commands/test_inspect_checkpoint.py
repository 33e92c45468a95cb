"""`rlvla inspect-checkpoint` on synthetic directories in the real layouts of every family (builders:
tests/checkpoints/checkpoint_layouts.py, tests/models/vla_helpers.py). Facts checked against the references:
openvla-7b stores 982 tensors / 7,541,237,184 parameters (issue 23 counted 982 keys loading by name; OpenVLA's
model card: 7.5 B), RLinf's LoRA targets (rlinf/models/__init__.py), openpi's converter layout."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "checkpoints"), str(TESTS / "models"), str(TESTS / "models" / "openpi")]

from checkpoint_layouts import (  # noqa: E402
    rlinf_value_head_shapes,
    write_full_openvla,
    write_oft_side_files,
    write_openpi_converted,
)
from vla_helpers import STATS, tiny_cfg, write_upstream_checkpoint  # noqa: E402

from rlvla_cli.checkpoints.inspect import inspect_checkpoint  # noqa: E402

REPO_ROOT = TESTS.parent
RLINF_LORA_TARGETS = ["proj", "qkv", "fc1", "fc2", "q", "kv", "fc3", "out_proj", "q_proj", "k_proj", "v_proj",
                      "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]


@pytest.fixture(scope="module")
def full_openvla(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt") / "openvla-7b"
    write_full_openvla(d, {"bridge_orig": STATS["bridge_orig"]}, dataset_statistics=STATS)
    return d


def test_full_size_openvla_reads_metadata_only(full_openvla):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = inspect_checkpoint(full_openvla)
    grown_gib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20  # ru_maxrss is KiB
    assert report.ok, [p.paragraph() for p in report.problems]
    assert report.family == "openvla"
    assert sum(g.tensors for g in report.groups.values()) == 982
    assert report.total_params == 7_541_237_184 and report.dtypes == {"bf16": 7_541_237_184}
    assert grown_gib < 2, grown_gib  # 15 GB of bf16 never read
    # 982 stored, 43 skipped by the loader: 2 x last block (26), 2 x final norm (4), SigLIP attn_pool (13)
    ignored = {reason.split(":")[0]: len(keys) for reason, keys in report.ignored.items()}
    assert ignored == {"last vision-tower block": 26, "final tower norm": 4, "SigLIP attention-pool head": 13}
    assert report.groups["lm_head"].loaded == 1 and report.groups["language model (Llama)"].loaded == 290
    assert report.norm_stats == {"config.json norm_stats": ["bridge_orig"],
                                 "dataset_statistics.json": ["bridge_orig", "fractal20220817_data"]}


def test_unnorm_key_not_in_statistics_is_exit_2_but_weights_still_checked(full_openvla):
    cfg = tiny_cfg("openvla", size="full", unnorm_key="bridge", precision="bf16")
    report = inspect_checkpoint(full_openvla, cfg)
    text = " ".join(p.paragraph() for p in report.problems)
    assert not report.ok and "unnorm_key" in text and "bridge_orig" in text
    assert report.groups["vision tower (SigLIP)"].loaded == 342 - 13 - 1 - 13  # weights checked anyway


def test_rlinf_value_head_is_recognised_and_mapped(tmp_path):
    d = tmp_path / "RLinf-OpenVLAOFT-PPO-ManiSkill3-25ood"
    write_full_openvla(d, {"bridge_orig": STATS["bridge_orig"]}, extra=rlinf_value_head_shapes(4096, 1))
    report = inspect_checkpoint(d)
    assert report.family == "rlinf_openvla" and report.ok, [p.paragraph() for p in report.problems]
    assert report.groups["value head"].tensors == 5 and report.groups["value head"].loaded == 5
    wrong = inspect_checkpoint(d, tiny_cfg("openvla_oft", size="full", unnorm_key="bridge_orig", add_value_head=True,
                                           value_type="action_level", num_action_chunks=8))
    assert not wrong.ok and "value" in " ".join(p.paragraph() for p in wrong.problems)


def test_oft_proprio_file_loads_and_continuous_head_is_refused(tmp_path):
    d = tmp_path / "oft"
    write_upstream_checkpoint(d)
    write_oft_side_files(d, hidden=64, proprio_dim=8)
    report = inspect_checkpoint(d, tiny_cfg("oft", use_proprio=True, state_dim=8, unnorm_key="bridge_orig"))
    # MLPResNet: layer_norm1 (2) + fc1 (2) + 2 blocks x (LayerNorm 2 + Linear 2) + layer_norm2 (2) + fc2 (2)
    assert report.groups["action head (continuous)"].tensors == 16
    assert "continuous action head" in " ".join(p.paragraph() for p in report.problems)
    (d / "action_head--150000_checkpoint.pt").unlink()
    report = inspect_checkpoint(d, tiny_cfg("oft", use_proprio=True, state_dim=8, unnorm_key="bridge_orig"))
    assert report.ok, [p.paragraph() for p in report.problems]
    assert report.family == "rlvla_openvla"  # written by rlvla's hf_config_from_dims; the .pt still counts
    assert report.groups["proprio projector"].loaded == 4


def _real_tree_adapter(base_dir: Path, out: Path, base_name: str) -> None:
    """peft's own get_peft_model + save_pretrained around the real module tree: rlvla's VLA plus the modules
    OpenVLA's checkpoint has but never runs (last tower block, SigLIP attn_pool with q / kv / proj / mlp)."""
    from peft import LoraConfig, get_peft_model
    from torch import nn

    from rlvla_cli.models.registry import build_policy
    from rlvla_cli.models.vision import Block

    vla = build_policy(tiny_cfg("openvla", model_path=str(base_dir), unnorm_key="bridge_orig")).vla
    for tower in (vla.vision_backbone.featurizer, vla.vision_backbone.fused_featurizer):
        tower.blocks.append(Block(vla.dims.dino if tower is vla.vision_backbone.featurizer else vla.dims.siglip))
    d = vla.dims.siglip.embed_dim
    pool = nn.Module()
    pool.q, pool.kv, pool.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
    pool.mlp = nn.Module()
    pool.mlp.fc1, pool.mlp.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
    vla.vision_backbone.fused_featurizer.attn_pool = pool
    vla.name_or_path = f"/data/models/{base_name}"  # what peft records as base_model_name_or_path
    peft_model = get_peft_model(vla, LoraConfig(r=4, lora_alpha=4, target_modules=RLINF_LORA_TARGETS,
                                                init_lora_weights="gaussian"))
    peft_model.save_pretrained(str(out))


def test_peft_adapter_pairs_with_its_base_and_mismatch_is_exit_2(tmp_path):
    base = tmp_path / "RLinf-OpenVLAOFT-ManiSkill-Base-Main"
    write_upstream_checkpoint(base)
    adapter = tmp_path / "RLinf-OpenVLAOFT-ManiSkill-Base-Lora"
    _real_tree_adapter(base, adapter, "RLinf-OpenVLAOFT-ManiSkill-Base-Main")
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"].endswith("Main")
    cfg = tiny_cfg("oft", model_path=str(base), unnorm_key="bridge_orig", is_lora=True, lora_path=str(adapter))
    report = inspect_checkpoint(adapter, cfg)
    assert report.ok, [p.paragraph() for p in report.all_problems()]
    assert report.family == "peft_adapter" and report.adapter["base_pairing"] == "match"
    dropped = sum(len(v) for r, v in report.ignored.items() if "never runs" in r)
    assert dropped > 0 and report.groups["LoRA adapters"].loaded == report.adapter["tensors"] - dropped
    plain = tmp_path / "openvla-7b"
    write_upstream_checkpoint(plain)
    wrong = inspect_checkpoint(adapter, cfg.model_copy(update={"model_path": str(plain)}))
    text = " ".join(p.paragraph() for p in wrong.all_problems())
    assert not wrong.ok and "RLinf-OpenVLAOFT-ManiSkill-Base-Main".lower() in text.lower()


@pytest.mark.parametrize("pi05", [False, True])
def test_openpi_converted_layout(tmp_path, pi05):
    from openpi_helpers import tiny_config

    from rlvla_cli.models.registry import build_policy

    d = tmp_path / ("pi05_libero" if pi05 else "pi0_libero")
    write_openpi_converted(d, build_policy(tiny_config(pi05=pi05)), pi05,
                           asset_ids=("physical-intelligence/libero", "other/robot"))
    report = inspect_checkpoint(d, tiny_config(pi05=pi05, norm_stats_key="physical-intelligence/libero"))
    assert report.family == "openpi_converted" and report.ok, [p.paragraph() for p in report.problems]
    assert report.norm_stats["openpi norm_stats.json asset ids"] == ["assets/other/robot",
                                                                       "assets/physical-intelligence/libero"]
    # pi0.5: time_mlp_in / time_mlp_out (weight + bias each); pi0: state_proj (weight + bias)
    assert report.groups["time MLP (pi0.5, adaRMS)" if pi05 else "state projection (pi0)"].loaded == (4 if pi05 else 2)
    wrong = inspect_checkpoint(d, tiny_config(pi05=not pi05, norm_stats_key="physical-intelligence/libero"))
    assert "actor.model.pi05" in " ".join(p.paragraph() for p in wrong.problems)
    (d / "tokenizer.json").unlink()  # the converter writes none: train would refuse, so does inspect
    assert "tokenizer" in " ".join(p.paragraph() for p in inspect_checkpoint(d).problems)


def test_lerobot_pi0_layout_needs_norm_stats(tmp_path):
    from openpi_helpers import tiny_config
    from safetensors.torch import save_file

    from rlvla_cli.models.openpi.checkpoint import our_key_to_openpi
    from rlvla_cli.models.openpi.state_tokens import byte_level_tokenizer
    from rlvla_cli.models.registry import build_policy

    d = tmp_path / "pi0_lerobot"
    d.mkdir()
    state = build_policy(tiny_config()).state_dict()
    save_file({"model." + our_key_to_openpi(k): v.contiguous() for k, v in state.items() if our_key_to_openpi(k)},
              str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"type": "pi0", "chunk_size": 6, "n_action_steps": 6}))
    byte_level_tokenizer().save(str(d / "tokenizer.json"))
    report = inspect_checkpoint(d, tiny_config())
    assert report.family == "lerobot_pi"
    assert [p for p in report.problems if "norm_stats_path" in p.paragraph()], report.problems
    assert report.groups["action expert (Gemma)"].loaded == report.groups["action expert (Gemma)"].tensors


def test_run_directory_is_inspected_with_its_own_config(tmp_path):
    from test_eval_cmd import _save_run

    _save_run(tmp_path / "run")
    report = inspect_checkpoint(tmp_path / "run")
    assert report.ok and report.family == "rlvla_policy" and report.model_type == "small"
    assert "step 3" in report.notes[0]


def test_cli_exit_codes_and_json(tmp_path, full_openvla):
    bad = tmp_path / "not_a_model"
    bad.mkdir()
    (bad / "notes.txt").write_text("hello")
    cmd = [sys.executable, "-m", "rlvla_cli", "inspect-checkpoint"]
    out = subprocess.run([*cmd, str(bad), "--json"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert json.loads(out.stdout)["family"] == "unknown" and "no weights" in out.stderr

def test_command_prints_tables_and_exits_0(full_openvla, capsys, monkeypatch):
    from rlvla_cli.commands.inspect_checkpoint import run_inspect_checkpoint

    monkeypatch.setenv("COLUMNS", "200")
    run_inspect_checkpoint(full_openvla, None, False, [])  # returns (exit 0) when it would load
    out = capsys.readouterr().out
    assert "it would load" in out and "7.54B" in out and "SigLIP attention-pool head" in out


def test_no_tensor_data_is_read(tmp_path, monkeypatch):
    """Every tensor read path of the loaders raises: the report still comes out."""
    import safetensors.torch

    d = tmp_path / "tiny"
    write_upstream_checkpoint(d)

    def boom(*args, **kwargs):
        raise AssertionError("tensor data read")

    monkeypatch.setattr(safetensors.torch, "load_file", boom)
    monkeypatch.setattr("rlvla_cli.models.checkpoint.read_state_dict", boom)
    monkeypatch.setattr(torch.Tensor, "tolist", boom)
    report = inspect_checkpoint(d, tiny_cfg("openvla", unnorm_key="bridge_orig"))
    assert report.ok, [p.paragraph() for p in report.problems]

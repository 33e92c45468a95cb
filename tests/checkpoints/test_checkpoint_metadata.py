"""Pure parts of rlvla_cli/checkpoints: family rules, tensor groups / ignore reasons, header-only metadata."""

from __future__ import annotations

import torch
from checkpoint_layouts import write_sparse_safetensors
from safetensors.torch import save_file

from rlvla_cli.checkpoints.families import classify
from rlvla_cli.checkpoints.groups import group_of, ignore_reason, strip_wrappers
from rlvla_cli.checkpoints.metadata import safetensors_metadata


def test_header_metadata_matches_safetensors_own_writer(tmp_path):
    tensors = {"a.weight": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.ones(5)}
    save_file(tensors, str(tmp_path / "x.safetensors"))
    got = {m.name: (m.shape, m.dtype, m.numel) for m in safetensors_metadata(tmp_path / "x.safetensors")}
    assert got == {"a.weight": ((3, 4), "bf16", 12), "b": ((5,), "fp32", 5)}


def test_sparse_file_header_reads_without_data(tmp_path):
    n = write_sparse_safetensors(tmp_path / "big.safetensors", {"w": ((50_000, 50_000), torch.bfloat16)})
    assert n == 5 * 10**9 and (tmp_path / "big.safetensors").stat().st_blocks * 512 < 10**6  # a 5 GB hole
    [meta] = safetensors_metadata(tmp_path / "big.safetensors")
    assert meta.shape == (50_000, 50_000) and meta.dtype == "bf16"


def test_classify_each_family():
    vla = {"model_type": "openvla", "timm_model_ids": ["a", "b"]}
    pi = ["paligemma_with_expert.paligemma.model.language_model.norm.weight", "state_proj.weight"]
    assert classify(["config.json"], vla, ["projector.fc1.weight"]).name == "openvla"
    assert classify(["config.json", "proprio_projector--5_checkpoint.pt"], vla, []).name == "openvla_oft"
    assert classify(["config.json"], vla, ["value_head.mlp.4.weight"]).name == "rlinf_openvla"
    assert classify(["adapter_config.json"], None, []).name == "peft_adapter"
    assert classify(["config.json"], {"rlvla_model": {"model_type": "small"}}, []).model_types == ("small",)
    assert classify(["config.json"], {"paligemma_variant": "gemma_2b"}, pi, False).name == "openpi_converted"
    assert classify(["config.json"], {"type": "pi05"}, pi, True).name == "lerobot_pi"
    assert classify(["model.safetensors"], None, pi, False).name == "rlinf_openpi"
    assert classify(["notes.txt"], None, ["x"]).name == "unknown"


def test_groups_and_reasons():
    assert strip_wrappers("module.model.paligemma_with_expert.gemma_expert.lm_head.weight").startswith("palig")
    assert group_of("base_model.model.language_model.lm_head.weight", "openvla") == "lm_head"
    assert group_of("model.time_mlp_in.weight", "openpi") == "time MLP (pi0.5, adaRMS)"
    assert group_of("x.q_proj.lora_A.weight", "openvla") == "LoRA adapters"
    assert ignore_reason("vision_backbone.featurizer.blocks.23.mlp.fc1.weight").startswith("last vision-tower block")
    assert ignore_reason("vision_backbone.fused_featurizer.attn_pool.latent").startswith("SigLIP attention-pool")
    assert ignore_reason("paligemma_with_expert.gemma_expert.lm_head.weight").startswith("the action expert's")

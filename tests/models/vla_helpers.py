"""Tiny OpenVLA-family configs, observations and synthetic checkpoints in the real Hugging Face layout."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rlvla_cli.config.model import OpenVLAModelConfig, OpenVLAOFTModelConfig
from rlvla_cli.models.checkpoint import save_state_dict
from rlvla_cli.models.presets import openvla_dims
from rlvla_cli.models.prismatic import hf_config_from_dims
from rlvla_cli.models.tokenization import build_fallback_tokenizer

TASKS = ["pick up the red block", "open the drawer", "put the spoon on the towel and then close the microwave"]
STATS = {
    "bridge_orig": {
        "action": {
            "q01": [-0.03, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0],
            "q99": [0.03, 0.04, 0.04, 0.1, 0.1, 0.2, 1.0],
            "mask": [True, True, True, True, True, True, False],
            "mean": [0.0] * 7, "std": [0.01] * 7, "min": [-0.1] * 7, "max": [0.1] * 7,
        },
        "proprio": {"q01": [-1.0] * 3, "q99": [1.0] * 3},
        "num_transitions": 10,
        "num_trajectories": 1,
    },
    "fractal20220817_data": {
        "action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]},
    },
}


def tiny_cfg(kind: str = "openvla", **overrides):
    """A tiny fp32 OpenVLA / OpenVLA-OFT config (28 px images: 4 patches per tower)."""
    base = dict(size="tiny", precision="fp32", image_size=28, max_prompt_length=96, attn_implementation="eager")
    base.update(overrides)
    return OpenVLAModelConfig(**base) if kind == "openvla" else OpenVLAOFTModelConfig(**base)


def make_obs(batch: int = 3, seed: int = 0, size: int = 40, state_dim: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "main_images": torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=g),
        "wrist_images": torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=g),
        "states": torch.randn(batch, state_dim, generator=g),
        "task_descriptions": [TASKS[i % len(TASKS)] for i in range(batch)],
    }


def unused_upstream_keys(dims) -> dict[str, torch.Tensor]:
    """Keys an openvla-7b checkpoint holds that OpenVLA never uses (last tower block, final norms, SigLIP's
    attention-pool head), with plausible shapes."""
    out: dict[str, torch.Tensor] = {}
    for tower, tdims in (("featurizer", dims.dino), ("fused_featurizer", dims.siglip)):
        d, last = tdims.embed_dim, tdims.depth - 1
        prefix = f"vision_backbone.{tower}."
        out[prefix + f"blocks.{last}.attn.qkv.weight"] = torch.zeros(3 * d, d)
        out[prefix + f"blocks.{last}.mlp.fc1.weight"] = torch.zeros(tdims.mlp_dim, d)
        out[prefix + "norm.weight"] = torch.ones(d)
        out[prefix + "norm.bias"] = torch.zeros(d)
        if tdims.attn_pool:
            out[prefix + "attn_pool.latent"] = torch.zeros(1, 1, d)
            out[prefix + "attn_pool.kv.weight"] = torch.zeros(2 * d, d)
    return out


def write_upstream_checkpoint(directory: Path, seed: int = 0, *, gamma_names: bool = False) -> dict[str, torch.Tensor]:
    """A tiny checkpoint laid out like openvla/openvla-7b: config.json (OpenVLA keys, norm_stats), sharded
    model-0000i-of-0000n.safetensors + model.safetensors.index.json with the upstream parameter names,
    dataset_statistics.json, tokenizer.json + tokenizer_config.json. Returns the weights written (our names,
    without the ``vla.`` prefix) so a test can compare."""
    from rlvla_cli.models.prismatic import PrismaticVLA

    torch.manual_seed(seed)
    dims = openvla_dims("tiny")
    tokenizer = build_fallback_tokenizer(dims.llm.base_vocab_size)
    vla = PrismaticVLA(dims, 28, tokenizer.pad_token_id, "eager")
    state = {k: v.clone() for k, v in vla.state_dict().items()}
    stored = dict(state)
    if gamma_names:  # timm's raw LayerScale name
        stored = {k.replace(".scale_factor", ".gamma"): v for k, v in stored.items()}
    stored.update(unused_upstream_keys(dims))
    directory.mkdir(parents=True, exist_ok=True)
    files = save_state_dict(stored, directory, max_shard_bytes=200_000)
    assert len(files) > 1, "the synthetic checkpoint should be sharded"
    config = hf_config_from_dims(dims, 28, tokenizer.pad_token_id, 256, STATS)
    config["auto_map"] = {"AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "dataset_statistics.json").write_text(json.dumps(STATS))
    tokenizer.save_pretrained(str(directory))
    return state

"""Synthetic checkpoint directories in the real on-disk layouts of every family rlvla reads.

- ``write_sparse_safetensors``: a safetensors file whose header lists real names / shapes / dtypes and whose
  data region is a sparse hole (no disk, no memory): a full-size 7.5 B OpenVLA in bf16 is ~15 GB on paper.
- ``write_full_openvla``: openvla/openvla-7b's layout at full size: its minimal ``config.json`` (from the
  published repository: ``text_config`` holds only model_type / pad_token_id / torch_dtype / vocab_size),
  bf16 shards ``model-0000i-of-00003.safetensors`` + ``model.safetensors.index.json``, the upstream parameter
  names including the tensors OpenVLA never uses (last tower blocks, final norms, SigLIP's attention pool:
  timm ``AttentionPoolLatent``), ``dataset_statistics.json``, a tokenizer.
- OpenVLA-OFT's side files (moojink/openvla-oft ``prismatic/models/action_heads.py`` /
  ``projectors.py``, saved from DDP so every key starts with ``module.``), RLinf's value head
  (``rlinf/models/embodiment/modules/value_head.py``: mlp.0 / mlp.2 / mlp.4, no bias on the last).
- openpi's converter layout (``examples/convert_jax_model_to_pytorch.py``: model.safetensors, config.json with
  action_dim / action_horizon / paligemma_variant / action_expert_variant / precision, assets/<id>/norm_stats.json)
  and LeRobot's (config.json ``type``, ``model.``-prefixed keys, no norm_stats.json).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

_ST = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16"}
OPENVLA_7B_TEXT_CONFIG = {"model_type": "llama", "pad_token_id": 32000, "torch_dtype": "bfloat16", "vocab_size": 32064}


def write_sparse_safetensors(path: Path, specs: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    """Header with ``specs`` (name -> (shape, dtype)), data region left as a hole. Returns the data bytes."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (shape, dtype) in specs.items():
        n = 1
        for d in shape:
            n *= d
        nbytes = n * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": _ST[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    return offset


def openvla_7b_config(norm_stats: dict) -> dict:
    """openvla/openvla-7b's config.json (its keys as published), with ``norm_stats`` given."""
    return {
        "arch_specifier": "no-align+fused-gelu-mlp", "architectures": ["OpenVLAForActionPrediction"],
        "auto_map": {"AutoConfig": "configuration_prismatic.OpenVLAConfig",
                     "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"},
        "hf_llm_id": "meta-llama/Llama-2-7b-hf", "image_resize_strategy": "resize-naive", "image_sizes": [224, 224],
        "llm_backbone_id": "llama2-7b-pure", "llm_max_length": 2048, "model_type": "openvla", "n_action_bins": 256,
        "norm_stats": norm_stats, "output_projector_states": False, "pad_to_multiple_of": 64, "pad_token_id": 32000,
        "text_config": dict(OPENVLA_7B_TEXT_CONFIG),
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
        "use_fused_vision_backbone": True, "vision_backbone_id": "dinosiglip-vit-so-224px",
    }


def _last_block_and_heads(state: dict, dims) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors an openvla-7b checkpoint holds that rlvla does not build (see vision.py)."""
    out = {}
    for tower, tdims in (("featurizer", dims.dino), ("fused_featurizer", dims.siglip)):
        prefix, d = f"vision_backbone.{tower}.", tdims.embed_dim
        for key, tensor in state.items():  # block 0's tensors under the last block's index
            if key.startswith(prefix + "blocks.0."):
                out[key.replace("blocks.0.", f"blocks.{tdims.depth - 1}.")] = tuple(tensor.shape)
        out[prefix + "norm.weight"], out[prefix + "norm.bias"] = (d,), (d,)
        if tdims.attn_pool:
            pool = {"latent": (1, 1, d), "q.weight": (d, d), "q.bias": (d,), "kv.weight": (2 * d, d),
                    "kv.bias": (2 * d,), "proj.weight": (d, d), "proj.bias": (d,), "norm.weight": (d,),
                    "norm.bias": (d,), "mlp.fc1.weight": (tdims.mlp_dim, d), "mlp.fc1.bias": (tdims.mlp_dim,),
                    "mlp.fc2.weight": (d, tdims.mlp_dim), "mlp.fc2.bias": (d,)}
            out.update({prefix + "attn_pool." + k: v for k, v in pool.items()})
    return out


def openvla_full_shapes() -> dict[str, tuple[int, ...]]:
    """Every stored tensor of openvla-7b (upstream names) with its shape, from the full-size meta model."""
    from accelerate import init_empty_weights

    from rlvla_cli.models.presets import openvla_dims
    from rlvla_cli.models.prismatic import PrismaticVLA

    dims = openvla_dims("full")
    with init_empty_weights():
        vla = PrismaticVLA(dims, 224, 32000, "eager")
    state = {k: v for k, v in vla.state_dict().items() if "rotary_emb" not in k}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    shapes.update(_last_block_and_heads(state, dims))
    return shapes


def write_sharded(directory: Path, shapes: dict[str, tuple[int, ...]], shards: int = 3,
                  dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """Sparse bf16 shards ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = list(shapes)
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    weight_map, total = {}, 0
    for i, name in enumerate(names):
        part = keys[i::shards]
        total += write_sparse_safetensors(directory / name, {k: (shapes[k], dtype) for k in part})
        weight_map.update({k: name for k in part})
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return names


def write_full_openvla(directory: Path, norm_stats: dict, extra: dict[str, tuple[int, ...]] | None = None,
                       dataset_statistics: dict | None = None) -> dict[str, tuple[int, ...]]:
    """A full-size openvla-7b directory (sparse weights). ``extra`` adds stored tensors (e.g. RLinf's value
    head). Returns the stored shapes."""
    from rlvla_cli.models.tokenization import build_fallback_tokenizer

    shapes = openvla_full_shapes()
    shapes.update(extra or {})
    write_sharded(directory, shapes)
    (directory / "config.json").write_text(json.dumps(openvla_7b_config(norm_stats)))
    if dataset_statistics is not None:
        (directory / "dataset_statistics.json").write_text(json.dumps(dataset_statistics))
    build_fallback_tokenizer(32000).save_pretrained(str(directory))
    return shapes


def rlinf_value_head_shapes(hidden: int, num_values: int) -> dict[str, tuple[int, ...]]:
    """RLinf's ValueHead(input_dim=hidden, hidden_sizes=(512, 128), output_dim=V, bias_last=False)."""
    return {"value_head.mlp.0.weight": (512, hidden), "value_head.mlp.0.bias": (512,),
            "value_head.mlp.2.weight": (128, 512), "value_head.mlp.2.bias": (128,),
            "value_head.mlp.4.weight": (num_values, 128)}


def write_oft_side_files(directory: Path, hidden: int, proprio_dim: int = 8, action_dim: int = 7,
                         step: int = 150000) -> None:
    """moojink/openvla-oft's ``proprio_projector--<step>_checkpoint.pt`` (ProprioProjector: fc1 proprio ->
    llm, fc2 llm -> llm) and ``action_head--<step>_checkpoint.pt`` (L1RegressionActionHead: MLPResNet with 2
    blocks, input hidden * action_dim), saved from DDP (``module.`` prefix). Small ``hidden`` keeps them small."""
    proprio = {"module.fc1.weight": torch.zeros(hidden, proprio_dim), "module.fc1.bias": torch.zeros(hidden),
               "module.fc2.weight": torch.zeros(hidden, hidden), "module.fc2.bias": torch.zeros(hidden)}
    torch.save(proprio, directory / f"proprio_projector--{step}_checkpoint.pt")
    d_in = hidden * action_dim
    head = {"module.model.layer_norm1.weight": torch.ones(d_in), "module.model.layer_norm1.bias": torch.zeros(d_in),
            "module.model.fc1.weight": torch.zeros(hidden, d_in), "module.model.fc1.bias": torch.zeros(hidden)}
    for i in range(2):
        p = f"module.model.mlp_resnet_blocks.{i}.ffn."
        head.update({p + "0.weight": torch.ones(hidden), p + "0.bias": torch.zeros(hidden),
                     p + "1.weight": torch.zeros(hidden, hidden), p + "1.bias": torch.zeros(hidden)})
    head.update({"module.model.layer_norm2.weight": torch.ones(hidden), "module.model.layer_norm2.bias":
                 torch.zeros(hidden), "module.model.fc2.weight": torch.zeros(action_dim, hidden),
                 "module.model.fc2.bias": torch.zeros(action_dim)})
    torch.save(head, directory / f"action_head--{step}_checkpoint.pt")


def openpi_norm_stats(dims: int = 8) -> dict:
    """openpi's norm_stats.json content (``{"norm_stats": {"state"|"actions": {mean, std, q01, q99}}}``)."""
    feat = {"mean": [0.0] * dims, "std": [1.0] * dims, "q01": [-1.0] * dims, "q99": [1.0] * dims}
    return {"norm_stats": {"state": feat, "actions": dict(feat)}}


def write_openpi_converted(directory: Path, policy, pi05: bool, asset_ids=("physical-intelligence/libero",),
                           horizon: int = 6, tokenizer: bool = True) -> None:
    """openpi's converter output for ``policy`` (a tiny OpenPIPolicy): model.safetensors (openpi names),
    config.json, assets/<id>/norm_stats.json; plus tokenizer.json when ``tokenizer`` (the converter writes none)."""
    from rlvla_cli.models.openpi.checkpoint import save_openpi_checkpoint
    from rlvla_cli.models.openpi.state_tokens import byte_level_tokenizer

    save_openpi_checkpoint(policy, directory)
    (directory / "config.json").write_text(json.dumps({
        "action_dim": 32, "action_horizon": horizon, "paligemma_variant": "gemma_2b",
        "action_expert_variant": "gemma_300m", "precision": "float32"}))
    for asset in asset_ids:
        (directory / "assets" / asset).mkdir(parents=True, exist_ok=True)
        (directory / "assets" / asset / "norm_stats.json").write_text(json.dumps(openpi_norm_stats()))
    if tokenizer:
        byte_level_tokenizer().save(str(directory / "tokenizer.json"))

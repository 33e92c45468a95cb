"""Loading tiny checkpoints written with openpi's real PyTorch key names and file layout; wrong ones refused."""

from __future__ import annotations

import json

import pytest
import torch
from openpi_helpers import make_obs, tiny_config
from safetensors.torch import save_file

from rlvla_cli.errors import AssetError
from rlvla_cli.models.openpi.state_tokens import byte_level_tokenizer
from rlvla_cli.models.registry import build_policy

# Names as they appear in openpi's / RLinf's model.safetensors (transformers 4.5x layout).
REAL_KEYS_COMMON = [
    "paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight",
    "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight",
    "paligemma_with_expert.paligemma.model.vision_tower.vision_model.post_layernorm.weight",
    "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight",
    "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight",
    "paligemma_with_expert.paligemma.model.language_model.layers.1.mlp.gate_proj.weight",
    "paligemma_with_expert.paligemma.model.language_model.norm.weight",
    "paligemma_with_expert.gemma_expert.model.layers.0.self_attn.k_proj.weight",
    "action_in_proj.weight",
    "action_out_proj.bias",
]
REAL_KEYS_PI0 = ["state_proj.weight", "action_time_mlp_in.weight", "action_time_mlp_out.bias",
                 "paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.weight"]
REAL_KEYS_PI05 = ["time_mlp_in.weight", "time_mlp_out.bias",
                  "paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.dense.weight",
                  "paligemma_with_expert.gemma_expert.model.norm.dense.bias"]


def openpi_state(policy) -> dict[str, torch.Tensor]:
    """The network in openpi's naming, written out independently of the loader's mapping."""
    state = {}
    for name, tensor in policy.state_dict().items():
        if name.startswith("flow."):
            key = name[len("flow."):].replace(".vision_tower.", ".vision_tower.vision_model.", 1)
            state[key] = tensor.clone()
    embed = state["paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"]
    state["paligemma_with_expert.paligemma.lm_head.weight"] = embed.clone()  # tied pair, stored twice
    width = policy.dims.expert.width
    state["paligemma_with_expert.gemma_expert.lm_head.weight"] = torch.randn(policy.dims.vocab_size, width)
    return state


def write_sharded(state: dict[str, torch.Tensor], directory, shards: int = 2) -> None:
    """model-0000i-of-0000n.safetensors + model.safetensors.index.json (like save_pretrained) + tokenizer.json."""
    directory.mkdir(parents=True, exist_ok=True)
    byte_level_tokenizer().save(str(directory / "tokenizer.json"))
    keys = sorted(state)
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    weight_map = {}
    for i, name in enumerate(names):
        part = {k: state[k].contiguous() for k in keys[i::shards]}
        save_file(part, str(directory / name))
        weight_map.update({k: name for k in part})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def write_norm_stats(path, state_dim: int = 8, action_dim: int = 7) -> dict:
    stats = {
        "state": {"mean": [0.1] * state_dim, "std": [2.0] * state_dim, "q01": [-3.0] * state_dim,
                  "q99": [3.0] * state_dim},
        "actions": {"mean": [0.5] * action_dim, "std": [0.2] * action_dim, "q01": [-0.4] * action_dim,
                    "q99": [0.6] * action_dim},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"norm_stats": stats}))
    return stats


@pytest.mark.parametrize("pi05", [False, True], ids=["pi0", "pi05"])
def test_real_layout_checkpoint_loads(build, tmp_path, pi05):
    source = build(pi05=pi05)
    state = openpi_state(source)
    for key in REAL_KEYS_COMMON + (REAL_KEYS_PI05 if pi05 else REAL_KEYS_PI0):
        assert key in state, key
    ckpt = tmp_path / "RLinf-Pi0-tiny"
    write_sharded(state, ckpt)
    write_norm_stats(ckpt / "assets" / "physical-intelligence" / "libero" / "norm_stats.json")
    torch.manual_seed(123)  # a different random init: every network tensor must come from the file
    loaded = build_policy(tiny_config(pi05=pi05, model_path=str(ckpt)))
    theirs, ours = source.state_dict(), loaded.state_dict()
    for name, tensor in ours.items():
        if name.startswith("flow."):
            assert torch.equal(tensor, theirs[name]), name
    assert loaded.norm_stats.actions is not None


def test_norm_stats_unnormalise_actions(build, tmp_path):
    source = build()
    ckpt = tmp_path / "ckpt"
    write_sharded(openpi_state(source), ckpt, shards=1)
    write_norm_stats(ckpt / "norm_stats.json")
    policy = build_policy(tiny_config(model_path=str(ckpt)))
    out = policy.predict(make_obs(), mode="eval")
    normed = out.forward_inputs["chains"][:, -1, :4, :7]
    # pi0 uses mean / std: a = x (std + 1e-6) + mean
    torch.testing.assert_close(out.actions, normed * (0.2 + 1e-6) + 0.5)
    # states: (s - 0.1) / (2 + 1e-6), padded to 32 with zeros
    state = out.forward_inputs["state"]
    torch.testing.assert_close(state[:, :8], (make_obs()["states"] - 0.1) / (2.0 + 1e-6))
    assert torch.equal(state[:, 8:], torch.zeros(3, 24))


def test_lm_head_only_fills_the_embedding_and_wrapper_prefixes_are_dropped(build, tmp_path):
    source = build()
    state = openpi_state(source)
    del state["paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"]
    state = {"module." + k: v for k, v in state.items()}  # as saved from a DDP-wrapped model
    write_sharded(state, tmp_path / "ckpt", shards=1)
    loaded = build_policy(tiny_config(model_path=str(tmp_path / "ckpt")))
    key = "flow.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
    assert torch.equal(loaded.state_dict()[key], source.state_dict()[key])


def test_wrong_variant_is_refused(build, tmp_path):
    write_sharded(openpi_state(build(pi05=False)), tmp_path / "pi0")
    with pytest.raises(AssetError, match=r"pi0 checkpoint.*pi05: true|pi05: false"):
        build_policy(tiny_config(pi05=True, model_path=str(tmp_path / "pi0")))


def test_missing_and_misshaped_tensors_are_refused(build, tmp_path):
    state = openpi_state(build())
    missing = dict(state)
    del missing["paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight"]
    write_sharded(missing, tmp_path / "missing")
    with pytest.raises(AssetError, match="missing keys.*layers.1.mlp.up_proj"):
        build_policy(tiny_config(model_path=str(tmp_path / "missing")))
    bad = dict(state)
    bad["action_in_proj.weight"] = torch.zeros(5, 32)
    write_sharded(bad, tmp_path / "bad")
    with pytest.raises(AssetError, match="shape mismatch.*action_in_proj"):
        build_policy(tiny_config(model_path=str(tmp_path / "bad")))
    extra = dict(state)
    extra["paligemma_with_expert.paligemma.model.language_model.layers.7.mlp.up_proj.weight"] = torch.zeros(2, 2)
    write_sharded(extra, tmp_path / "extra")
    with pytest.raises(AssetError, match="unexpected keys.*layers.7"):
        build_policy(tiny_config(model_path=str(tmp_path / "extra")))


def test_not_an_openpi_checkpoint_is_refused(tmp_path):
    write_sharded({}, tmp_path / "other", shards=1)
    (tmp_path / "other" / "model.safetensors.index.json").unlink()
    save_file({"model.embed.weight": torch.zeros(2, 2)}, str(tmp_path / "other" / "model.safetensors"))
    with pytest.raises(AssetError, match="not an openpi pi0 / pi0.5 checkpoint"):
        build_policy(tiny_config(model_path=str(tmp_path / "other")))


def test_several_norm_stats_need_a_key(build, tmp_path):
    ckpt = tmp_path / "ckpt"
    write_sharded(openpi_state(build()), ckpt, shards=1)
    write_norm_stats(ckpt / "assets" / "libero" / "norm_stats.json")
    write_norm_stats(ckpt / "assets" / "maniskill" / "norm_stats.json")
    with pytest.raises(AssetError, match="several norm_stats.json"):
        build_policy(tiny_config(model_path=str(ckpt)))
    policy = build_policy(tiny_config(model_path=str(ckpt), norm_stats_key="maniskill"))
    assert policy.norm_stats.state is not None

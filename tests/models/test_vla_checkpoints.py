"""Synthetic checkpoints in the real openvla/openvla-7b layout load; wrong ones are refused clearly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from vla_helpers import STATS, make_obs, tiny_cfg, write_upstream_checkpoint

from rlvla_cli.errors import AssetError, ConfigError
from rlvla_cli.models.checkpoint import INDEX_NAME, read_state_dict
from rlvla_cli.models.presets import openvla_dims
from rlvla_cli.models.prismatic import checkpoint_key_to_ours, dims_from_hf_config
from rlvla_cli.models.registry import build_policy, count_parameters


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    directory = tmp_path_factory.mktemp("openvla-7b-tiny")
    return directory, write_upstream_checkpoint(directory)


@pytest.mark.parametrize("kind", ["openvla", "openvla_oft"])
def test_upstream_layout_loads_with_the_same_weights(upstream, kind):
    directory, written = upstream
    assert (directory / INDEX_NAME).is_file() and (directory / "tokenizer.json").is_file()
    policy = build_policy(tiny_cfg(kind, model_path=str(directory), unnorm_key="bridge_orig", add_value_head=True))
    own = policy.state_dict()
    for key, tensor in written.items():
        assert torch.equal(own["vla." + key], tensor), key
    out = policy.predict(make_obs(2), "eval")
    # un-normalised with bridge_orig's q01 / q99: dims inside their bounds, gripper (mask false) in [-1, 1]
    q01, q99 = torch.tensor(STATS["bridge_orig"]["action"]["q01"]), torch.tensor(STATS["bridge_orig"]["action"]["q99"])
    acts = out.actions.reshape(-1, 7)
    assert torch.all(acts[:, :6] >= q01[:6] - 1e-6) and torch.all(acts[:, :6] <= q99[:6] + 1e-6)
    assert torch.all(acts[:, 6].abs() <= 1.0)


def test_timm_gamma_names_and_prefixes_map(tmp_path):
    written = write_upstream_checkpoint(tmp_path / "ckpt", seed=1, gamma_names=True)
    policy = build_policy(tiny_cfg(model_path=str(tmp_path / "ckpt"), unnorm_key="bridge_orig"))
    assert any(".ls1.scale_factor" in k for k in written)
    for key, tensor in written.items():
        assert torch.equal(policy.state_dict()["vla." + key], tensor), key
    dims = openvla_dims("tiny")
    assert checkpoint_key_to_ours("module.projector.fc1.weight", dims) == "vla.projector.fc1.weight"
    assert checkpoint_key_to_ours("base_model.model.language_model.lm_head.weight", dims) == \
        "vla.language_model.lm_head.weight"
    assert checkpoint_key_to_ours("vision_backbone.fused_featurizer.attn_pool.q.weight", dims) is None
    assert checkpoint_key_to_ours("value_head.net.0.weight", dims) == "value_head.net.0.weight"


def test_unnorm_key_must_exist_and_be_chosen(upstream):
    directory, _ = upstream
    with pytest.raises(ConfigError, match="did you mean"):
        build_policy(tiny_cfg(model_path=str(directory), unnorm_key="bridge"))
    with pytest.raises(ConfigError, match="2 datasets"):
        build_policy(tiny_cfg(model_path=str(directory)))


def test_shape_mismatch_is_refused_naming_dir_and_keys(tmp_path):
    directory = tmp_path / "bad"
    write_upstream_checkpoint(directory)
    index = json.loads((directory / INDEX_NAME).read_text())
    shard = index["weight_map"]["projector.fc1.weight"]
    state = read_state_dict(directory)
    tensors = {k: v for k, v in state.items() if index["weight_map"][k] == shard}
    tensors["projector.fc1.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(directory / shard))
    with pytest.raises(AssetError) as err:
        build_policy(tiny_cfg(model_path=str(directory), unnorm_key="bridge_orig"))
    assert str(directory) in str(err.value) and "projector.fc1.weight" in str(err.value)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    directory = tmp_path / "other"
    state = write_upstream_checkpoint(directory)
    for f in directory.glob("model*.safetensors*"):
        f.unlink()
    renamed = {("lm." + k if k.startswith("language_model.model.layers.1.") else k): v for k, v in state.items()}
    save_file(renamed, str(directory / "model.safetensors"))
    with pytest.raises(AssetError) as err:
        build_policy(tiny_cfg(model_path=str(directory), unnorm_key="bridge_orig"))
    text = str(err.value)
    assert "missing keys" in text and "unexpected keys" in text and "language_model.model.layers.1" in text


def test_not_an_openvla_dir_and_missing_shard(tmp_path):
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(AssetError, match="not an OpenVLA checkpoint"):
        build_policy(tiny_cfg(model_path=str(tmp_path / "gpt")))
    with pytest.raises(AssetError, match="does not exist"):
        read_state_dict(tmp_path / "nowhere")
    directory = tmp_path / "partial"
    write_upstream_checkpoint(directory)
    next(directory.glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(AssetError, match="shards that are missing"):
        build_policy(tiny_cfg(model_path=str(directory), unnorm_key="bridge_orig"))


def test_pickled_code_is_never_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "d").mkdir()
    torch.save({"x": Evil()}, tmp_path / "d" / "pytorch_model.bin")
    with pytest.raises(AssetError, match="could not be read as plain tensors"):
        read_state_dict(tmp_path / "d")
    torch.save({"w": torch.ones(2)}, tmp_path / "d" / "pytorch_model.bin")  # plain tensors are fine
    assert torch.equal(read_state_dict(tmp_path / "d")["w"], torch.ones(2))


def test_real_openvla_config_means_the_7b_dims():
    config = {
        "model_type": "openvla", "use_fused_vision_backbone": True, "image_sizes": [224, 224],
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "text_config": {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064},
    }
    dims, image_size = dims_from_hf_config(config, "config.json")
    assert image_size == 224 and dims.llm.hidden_size == 4096 and dims.llm.num_hidden_layers == 32
    assert dims.dino.embed_dim == 1024 and dims.siglip.embed_dim == 1152 and dims.siglip.depth == 27


def test_count_parameters_full_size_on_meta():
    from rlvla_cli.config.model import OpenVLAModelConfig

    counts = count_parameters(OpenVLAModelConfig(size="full"))
    # OpenVLA-7B has 7.54 B parameters; ~0.04 B of them (last tower blocks, norms, SigLIP's pool head) are unused
    assert 7.45e9 < counts["total"] < 7.56e9 and counts["value_head"] == 0
    lora = count_parameters(OpenVLAModelConfig(size="full", is_lora=True, lora_rank=32, add_value_head=True))
    assert 0 < lora["trainable"] < 0.02 * lora["total"] and lora["value_head"] > 0


def test_adapter_saved_by_peft_itself_loads(tmp_path, upstream):
    """An adapter written by ``PeftModel.save_pretrained`` around the same HF-named module (as RLinf / OpenVLA
    fine-tuning scripts do) loads into our policy, and ours reloads into a PeftModel."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from rlvla_cli.models.prismatic import PrismaticVLA
    from rlvla_cli.models.tokenization import build_fallback_tokenizer

    directory, _ = upstream
    cfg = tiny_cfg(model_path=str(directory), unnorm_key="bridge_orig")
    torch.manual_seed(3)
    dims = openvla_dims("tiny")
    body = PrismaticVLA(dims, 28, build_fallback_tokenizer(dims.llm.base_vocab_size).pad_token_id, "eager")
    peft_model = get_peft_model(body, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "qkv"],
                                                 init_lora_weights="gaussian"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    policy = build_policy(cfg.model_copy(update={"is_lora": True, "lora_path": str(tmp_path / "adapter")}))
    ours = {n.replace("vla.", "", 1): p for n, p in policy.named_parameters() if "lora_" in n}
    theirs = {n.replace("base_model.model.", "", 1): p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert set(ours) == set(theirs)
    for name, p in theirs.items():
        assert torch.equal(ours[name], p), name
    policy.save_pretrained(tmp_path / "ours")
    fresh = PrismaticVLA(dims, 28, body.language_model.config.pad_token_id, "eager")
    reloaded = PeftModel.from_pretrained(fresh, str(tmp_path / "ours"))
    for name, p in reloaded.named_parameters():
        if "lora_" in name:
            assert torch.equal(p, theirs[name.replace("base_model.model.", "", 1)]), name


def test_oft_proprio_projector_file_loads(tmp_path):
    directory = tmp_path / "oft"
    write_upstream_checkpoint(directory)
    hidden = openvla_dims("tiny").llm.hidden_size
    weights = {"module.fc1.weight": torch.randn(hidden, 3), "module.fc1.bias": torch.randn(hidden),
               "module.fc2.weight": torch.randn(hidden, hidden), "module.fc2.bias": torch.randn(hidden)}
    torch.save(weights, directory / "proprio_projector--150000_checkpoint.pt")
    policy = build_policy(tiny_cfg("openvla_oft", model_path=str(directory), unnorm_key="bridge_orig",
                                   use_proprio=True, state_dim=3))
    assert torch.equal(policy.proprio_projector.fc1.weight, weights["module.fc1.weight"])
    assert policy.predict(make_obs(2), "eval").actions.shape == (2, 8, 7)

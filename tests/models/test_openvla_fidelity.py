"""Real-layout OpenVLA / OpenVLA-OFT checkpoints act as their reference code does (issue 23, items 1-9).

The reference implementations (openvla/openvla, moojink/openvla-oft, RLinf) do not pip-install, so their
documented behaviour is encoded here with a citation per test, and compared against rlvla's policy built from a
synthetic directory in the exact published layout (tests/models/real_layouts_openvla.py).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from real_layouts_openvla import STATS, write_peft_adapter, write_real_checkpoint
from vla_helpers import make_obs

from rlvla_cli.config.model import OpenVLAOFTModelConfig
from rlvla_cli.errors import AssetError, ConfigError
from rlvla_cli.models.registry import build_policy

BASE = "RLinf-OpenVLAOFT-ManiSkill-Base-Main"


def _cfg(path, **overrides):
    base = dict(model_path=str(path), precision="fp32", image_size=28, max_prompt_length=48,
                attn_implementation="eager", unnorm_key="bridge_orig", num_action_chunks=2)
    base.update(overrides)
    return OpenVLAOFTModelConfig(**base)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    tree = write_real_checkpoint(root / BASE, value_outputs=2)
    write_peft_adapter(tree, root / "RLinf-OpenVLAOFT-ManiSkill-Base-Lora", BASE)
    return root, tree


def _reference_oft_logprobs(policy, obs, row: int, official: bool, causal: bool = False) -> torch.Tensor:
    """moojink/openvla-oft modeling_prismatic.py ``predict_action`` (batch 1, no padding): input ids = prompt
    (+ 29871 "\u2581" if absent) + C*A placeholder ids + ``</s>`` (STOP_INDEX 2; RLinf's ``rlinf`` version
    drops it in ``_build_embedding``); placeholder embeddings zeroed; patches inserted after ``<s>``; the LM runs
    with full bidirectional attention (the fork's SDPA path: no padding -> no mask, is_causal False); logits of
    the actions = ``logits[:, NUM_PATCHES + NUM_PROMPT_TOKENS : + C*A]`` over the last 256 ids of the base
    vocabulary. Returns log-softmax over those ids, columns ordered by bin (token = vocab_end - 1 - bin)."""
    from rlvla_cli.models.tokenization import PROMPT

    tok = policy.tokenizer
    ids = tok(PROMPT.format(task=obs["task_descriptions"][row].lower()))["input_ids"]
    space = tok.convert_tokens_to_ids("\u2581")
    ids = ids + ([space] if ids[-1] != space else [])
    num_prompt_tokens = len(ids) - 1
    n = policy.num_tokens
    ids = ids + [1] * n + ([tok.eos_token_id] if official else [])
    ids_t = torch.tensor([ids])
    actions_mask = torch.zeros_like(ids_t, dtype=torch.bool)
    actions_mask[:, num_prompt_tokens + 1: num_prompt_tokens + 1 + n] = True
    embeds = policy.vla.embed_tokens(ids_t) * ~actions_mask.unsqueeze(-1)
    inputs = policy.inputs_from_obs({k: (v[row: row + 1] if k != "task_descriptions" else v[row: row + 1])
                                     for k, v in obs.items()})
    patches = policy.vla.projector(policy.vla.vision_backbone(policy.pixel_values(inputs)))
    mm = torch.cat([embeds[:, :1], patches, embeds[:, 1:]], dim=1)
    total = mm.shape[1]
    mask = torch.zeros(1, 1, total, total)
    if causal:
        mask = mask.masked_fill(torch.ones(total, total, dtype=torch.bool).triu(1), torch.finfo(mask.dtype).min)
    out = policy.vla.language_model(inputs_embeds=mm, attention_mask=mask, position_ids=torch.arange(total)[None])
    start = patches.shape[1] + num_prompt_tokens
    logits = out.logits[:, start: start + n].float()
    vocab_end = tok.vocab_size
    action_logits = logits[..., vocab_end - 256: vocab_end].flip(-1)  # column j = token vocab_end - 1 - j
    return action_logits.log_softmax(-1)[0]


@pytest.mark.parametrize("version", ["rlinf", "official"])
def test_oft_action_logits_match_the_reference_layout(real, version):
    """Items 1 and 2: slot position (prefix + j - 1), zero action embeddings, stop token per version,
    bidirectional attention; a padded batch scores each row as the reference does alone."""
    root, _ = real
    torch.manual_seed(0)
    policy = build_policy(_cfg(root / BASE, implement_version=version))
    obs = make_obs(3)
    out = policy.predict(obs, "eval")
    ev = policy.evaluate(out.forward_inputs)
    bins = policy.action_tokenizer.tokens_to_bins(out.forward_inputs["action_tokens"])
    assert out.forward_inputs["prompt_mask"].sum(1).unique().numel() > 1  # rows are padded differently
    for row in range(3):
        ref = _reference_oft_logprobs(policy, obs, row, official=version == "official")
        torch.testing.assert_close(ev.logprobs[row].flatten(), ref.gather(-1, bins[row, :, None])[:, 0],
                                   atol=2e-5, rtol=0)
        assert torch.equal(bins[row], ref.argmax(-1))  # greedy = the reference's argmax tokens
    # the other layout, or a causal prefix, is a different function: the comparison above can fail
    other = _reference_oft_logprobs(policy, obs, 0, official=version != "official")
    causal = _reference_oft_logprobs(policy, obs, 0, official=version == "official", causal=True)
    for wrong in (other, causal):
        assert (wrong.gather(-1, bins[0, :, None])[:, 0] - ev.logprobs[0].flatten()).abs().max() > 1e-3


def test_oft_values_read_the_last_prompt_token(real):
    """RLinf: ``value_head(hidden_states[-1][:, -C*A-1])`` -- the last prompt token of the full pass."""
    root, tree = real
    policy = build_policy(_cfg(root / BASE, add_value_head=True, value_type="action_level"))
    obs = make_obs(2)
    out = policy.predict(obs, "eval")
    torch.testing.assert_close(policy.get_values(obs), out.values, atol=1e-5, rtol=0)
    hidden = policy._parallel_pass(out.forward_inputs)[1]
    with torch.no_grad():
        torch.testing.assert_close(out.values, tree.value_head(hidden.float()), atol=1e-5, rtol=0)


def test_rlinf_value_head_loads_and_is_checked(real, caplog):
    """Item 8: ``value_head.mlp.{0,2,4}`` (no last bias) loads into ours; a wrong value_type is refused; an
    unused one is reported."""
    root, tree = real
    policy = build_policy(_cfg(root / BASE, add_value_head=True, value_type="action_level"))
    for i in (0, 2, 4):
        assert torch.equal(policy.value_head.net[i].weight, tree.value_head.mlp[i].weight)
    assert torch.equal(policy.value_head.net[4].bias, torch.zeros(2))
    with pytest.raises(ConfigError, match="value_type"):
        build_policy(_cfg(root / BASE, add_value_head=True, value_type="chunk_level"))
    with caplog.at_level(logging.WARNING, logger="rlvla_cli.models.openvla_builder"):
        build_policy(_cfg(root / BASE, add_value_head=False))
    assert "value head is not loaded" in caplog.text


def test_rlinf_adapter_around_the_real_tree_loads(real, caplog):
    """Item 3: RLinf's default targets put adapters on the towers' last blocks and SigLIP's attn_pool (26
    tensors: 2 x (4 + 4 + 5) modules); they are dropped with a counted reason, every other tensor loads."""
    root, _ = real
    peft_model = write_peft_adapter(write_real_checkpoint(root / "b2" / BASE, seed=5), root / "lora2", BASE)
    with caplog.at_level(logging.INFO, logger="rlvla_cli.models.openvla_builder"):
        policy = build_policy(_cfg(root / "b2" / BASE, is_lora=True, lora_path=str(root / "lora2")))
    assert "26 adapter tensors not loaded" in caplog.text and "attn_pool" in caplog.text
    theirs = {n.replace("base_model.model.", "", 1): p for n, p in peft_model.named_parameters() if "lora_" in n}
    ours = {n.replace("vla.", "", 1): p for n, p in policy.named_parameters() if "lora_" in n}
    assert len(theirs) - len(ours) == 26 and set(ours) <= set(theirs)
    for name, p in ours.items():
        assert torch.equal(p, theirs[name]), name
    assert any("lm_head.lora_A" in n for n in ours) and any("patch_embed.proj.lora_A" in n for n in ours)


def test_lm_head_lora_reaches_the_action_logits(real):
    """Item 4: the action logits equal the adapted lm_head's own output (peft's forward) on the action rows."""
    root, _ = real
    policy = build_policy(_cfg(root / BASE, is_lora=True, lora_path=str(root / "RLinf-OpenVLAOFT-ManiSkill-Base-Lora")))
    hidden = torch.randn(3, policy.vla.dims.llm.hidden_size)
    ids = policy.action_token_ids
    with torch.no_grad():
        ours = policy.vla.action_logits(hidden, ids)
        peft_out = policy.vla.language_model.lm_head(hidden)[:, ids]
        base_only = hidden @ policy.vla.language_model.lm_head.weight[ids].t()
    torch.testing.assert_close(ours, peft_out, atol=1e-5, rtol=1e-5)
    assert (ours - base_only).abs().max() > 1e-3
    out = policy.predict(make_obs(2), "train")  # and RL updates reach the lm_head adapter through the log-probs
    policy.evaluate(out.forward_inputs).logprobs.sum().backward()
    assert policy.vla.language_model.lm_head.lora_B["default"].weight.grad.abs().sum() > 0


def test_adapter_base_pairing(real, tmp_path, caplog):
    """Item 6: an OFT adapter on a plain OpenVLA base is refused; a differently named copy only warns."""
    root, tree = real
    lora = str(root / "RLinf-OpenVLAOFT-ManiSkill-Base-Lora")
    plain = tmp_path / "openvla-7b"
    write_real_checkpoint(plain)
    with pytest.raises(AssetError, match="trained on 'rlinf-openvlaoft-maniskill-base-main'"):
        build_policy(_cfg(plain, is_lora=True, lora_path=lora))
    copy = tmp_path / "my-oft-copy"
    write_real_checkpoint(copy)
    with caplog.at_level(logging.WARNING, logger="rlvla_cli.models.openvla_builder"):
        build_policy(_cfg(copy, is_lora=True, lora_path=lora))
    assert "check that they are the same model" in caplog.text


def test_continuous_action_head_is_refused(tmp_path):
    """Item 5: moojink's L1-regression head file next to the VLA is refused, naming the file."""
    directory = tmp_path / "openvla-7b-oft-finetuned-libero-spatial"
    write_real_checkpoint(directory)
    torch.save({"model.fc1.weight": torch.zeros(2, 2)}, directory / "action_head--150000_checkpoint.pt")
    with pytest.raises(AssetError, match="action_head--150000_checkpoint.pt"):
        build_policy(_cfg(directory))


def test_norm_stats_merge_and_no_noops(tmp_path):
    """Item 7 (RLinf get_model: ``norm_stats.update(dataset_statistics)``; ``unnorm_key + "_no_noops"``): a key
    only config.json has still resolves, the file wins on shared keys, libero_10 finds libero_10_no_noops."""
    libero = {"action": {"q01": [-2.0] * 7, "q99": [2.0] * 7, "mask": [True] * 6 + [False]}}
    config_only = {"libero_10_no_noops": libero, "bridge_orig": {"action": {"q01": [-9.0] * 7, "q99": [9.0] * 7}}}
    directory = tmp_path / "ckpt"
    write_real_checkpoint(directory, config_stats=config_only, file_stats=STATS)
    policy = build_policy(_cfg(directory, unnorm_key="libero_10"))
    assert torch.equal(policy.stats.q99, torch.full((7,), 2.0))
    policy = build_policy(_cfg(directory, unnorm_key="bridge_orig"))
    assert torch.equal(policy.stats.q99, torch.tensor(STATS["bridge_orig"]["action"]["q99"]))
    assert set(policy.raw_stats) == {"libero_10_no_noops", "bridge_orig"}


def test_text_config_takes_llamaconfig_defaults(real):
    """Item 9: openvla/openvla configuration_prismatic.py builds text_config as ``LlamaConfig(**text_config)``;
    the published text_config has only model_type / pad_token_id / torch_dtype / vocab_size."""
    from transformers import LlamaConfig

    from rlvla_cli.models.prismatic import dims_from_hf_config

    root, _ = real
    config = json.loads((root / BASE / "config.json").read_text())
    published = {k: config["text_config"][k] for k in ("model_type", "pad_token_id", "torch_dtype", "vocab_size")}
    dims, _ = dims_from_hf_config({**config, "text_config": published, "rlvla_vision_dims": None}, "config.json")
    ref = LlamaConfig(**{k: v for k, v in published.items() if k != "model_type"})
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "rms_norm_eps", "max_position_embeddings", "vocab_size"):
        assert getattr(dims.llm, key) == getattr(ref, key), key
    assert dims.llm.rms_norm_eps == 1e-6
    policy = build_policy(_cfg(root / BASE))  # the tiny text_config leaves rms_norm_eps out, like the real one
    assert policy.vla.language_model.config.rms_norm_eps == 1e-6


def test_oft_preset_pairs_rlinf_lora_with_its_base():
    """Item 6: RLinf's maniskill_ppo_openvlaoft puts RLinf-OpenVLAOFT-ManiSkill-Base-Lora on
    RLinf-OpenVLAOFT-ManiSkill-Base-Main; the preset and the catalogue say the same."""
    from pathlib import Path

    import yaml

    from rlvla_cli.hub.catalogue import CATALOGUE

    preset = yaml.safe_load((Path(__file__).parents[2] / "configs/model/openvla_oft.yaml").read_text())
    lora, base = CATALOGUE["openvla-oft-maniskill-lora"], CATALOGUE["openvla-oft-maniskill-base"]
    assert Path(preset["model_path"]).name == base.repo_id.split("/")[1] == BASE
    assert Path(preset["lora_path"]).name == lora.repo_id.split("/")[1]
    assert lora.requires == ("openvla-oft-maniskill-base",)
    assert preset["implement_version"] == lora.settings["actor.model.implement_version"] == "rlinf"


@pytest.mark.parametrize(("adapter_base", "base_dir", "status"), [
    ("/mnt/ckpts/RLinf-OpenVLAOFT-ManiSkill-Base-Main/", "models/RLinf-OpenVLAOFT-ManiSkill-Base-Main", "match"),
    ("RLinf/RLinf-OpenVLAOFT-ManiSkill-Base-Main", "models/openvla-7b", "mismatch"),
    ("openvla/openvla-7b", "models/Openvla-oft-SFT-libero10-traj1", "mismatch"),
    ("Haozhan72/Openvla-oft-SFT-libero10-traj1", "models/RLinf-OpenVLAOFT-LIBERO-130", "unknown"),
    ("/data/my_sft_run", "models/openvla-7b", "unknown"),
    (None, "models/openvla-7b", "unnamed"),
])
def test_adapter_base_pairing_cases(adapter_base, base_dir, status):
    from rlvla_cli.models.openvla_files import adapter_base_pairing

    assert adapter_base_pairing({"base_model_name_or_path": adapter_base}, base_dir).status == status


def test_adapter_on_the_proprio_projector_is_merged(tmp_path):
    """RLinf's ``fc1`` / ``fc2`` targets also adapt OFT's proprio projector (official models with use_proprio):
    the adapted function, W + (alpha / r) B A, is what the loaded projector computes."""
    from real_layouts_openvla import RealPrismaticTree, tiny_real_dims

    base = tmp_path / "Openvla-oft-SFT-robotwin"
    write_real_checkpoint(base)
    tree = RealPrismaticTree(tiny_real_dims(), proprio_dim=3)
    proprio = {k: v.clone() for k, v in tree.proprio_projector.state_dict().items()}
    torch.save(proprio, base / "proprio_projector--1000_checkpoint.pt")
    peft_model = write_peft_adapter(tree, tmp_path / "lora", base.name, rank=4)
    policy = build_policy(_cfg(base, implement_version="official", use_proprio=True, state_dim=3, is_lora=True,
                               lora_path=str(tmp_path / "lora")))
    states = torch.randn(5, 3)
    with torch.no_grad():
        expected = peft_model.base_model.model.proprio_projector(states)
        torch.testing.assert_close(policy.proprio_projector(states), expected, atol=1e-5, rtol=1e-5)
    assert not torch.equal(policy.proprio_projector.fc1.weight, proprio["fc1.weight"])


def test_adapter_without_some_targets_keeps_them_identity(real, tmp_path, caplog):
    """peft < 0.12 saved ``all-linear`` as suffix names ("proj" also matches the towers' patch_embed Conv2d it did
    not adapt): PeftModel.from_pretrained leaves such modules at init (B = 0, the identity); so do we, and say
    so. A file missing half of one pair is still refused."""
    from safetensors.torch import load_file, save_file

    root, _ = real
    source = root / "RLinf-OpenVLAOFT-ManiSkill-Base-Lora"
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text((source / "adapter_config.json").read_text())
    tensors = load_file(str(source / "adapter_model.safetensors"))
    save_file({k: v for k, v in tensors.items() if "patch_embed" not in k}, str(lora / "adapter_model.safetensors"))
    with caplog.at_level(logging.INFO, logger="rlvla_cli.models.openvla_builder"):
        policy = build_policy(_cfg(root / BASE, is_lora=True, lora_path=str(lora)))
    assert "no adapter for 4 LoRA tensors" in caplog.text
    assert not policy.vla.vision_backbone.featurizer.patch_embed.proj.lora_B["default"].weight.any()
    save_file({k: v for k, v in tensors.items() if "patch_embed.proj.lora_B" not in k},
              str(lora / "adapter_model.safetensors"))
    with pytest.raises(AssetError, match="2 missing"):
        build_policy(_cfg(root / BASE, is_lora=True, lora_path=str(lora)))


def test_openvla_decodes_as_the_reference(real):
    """OpenVLA (openvla/openvla modeling_prismatic.py ``predict_action``: prompt + 29871, patches after ``<s>``,
    causal Llama, greedy ``generate`` of action_dim tokens; RLinf restricts each step to the 256 action ids).
    The reference loop below recomputes the whole sequence each step (no KV cache, no padding)."""
    from rlvla_cli.config.model import OpenVLAModelConfig
    from rlvla_cli.models.tokenization import PROMPT

    root, _ = real
    policy = build_policy(OpenVLAModelConfig(model_path=str(root / BASE), precision="fp32", image_size=28,
                                             max_prompt_length=48, attn_implementation="eager",
                                             unnorm_key="bridge_orig"))
    obs = make_obs(3)
    out = policy.predict(obs, "eval")
    ev = policy.evaluate(out.forward_inputs)
    tok, vocab_end = policy.tokenizer, policy.tokenizer.vocab_size
    for row in range(3):
        ids = tok(PROMPT.format(task=obs["task_descriptions"][row].lower()))["input_ids"]
        space = tok.convert_tokens_to_ids("\u2581")
        ids = torch.tensor([ids + ([space] if ids[-1] != space else [])])
        inputs = policy.inputs_from_obs({k: v[row: row + 1] for k, v in obs.items()})
        patches = policy.vla.projector(policy.vla.vision_backbone(policy.pixel_values(inputs)))
        embeds = policy.vla.embed_tokens(ids)
        seq = torch.cat([embeds[:, :1], patches, embeds[:, 1:]], dim=1)
        chosen, logps = [], []
        for _ in range(7):
            with torch.no_grad():
                logits = policy.vla.language_model(inputs_embeds=seq).logits[0, -1].float()
            action_logp = logits[vocab_end - 256: vocab_end].log_softmax(-1)
            token = vocab_end - 256 + int(action_logp.argmax())
            chosen.append(token)
            logps.append(action_logp[token - (vocab_end - 256)])
            seq = torch.cat([seq, policy.vla.embed_tokens(torch.tensor([[token]]))], dim=1)
        assert out.forward_inputs["action_tokens"][row].tolist() == chosen
        torch.testing.assert_close(ev.logprobs[row].flatten(), torch.stack(logps), atol=2e-5, rtol=0)

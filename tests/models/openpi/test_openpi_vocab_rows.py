"""A saved pi0 checkpoint's own token-embedding size wins over the preset's (read from the safetensors header)."""

import dataclasses

import torch

from rlvla_cli.config.loader import load_config
from rlvla_cli.models.openpi import presets
from rlvla_cli.models.openpi.checkpoint import stored_vocab_rows
from rlvla_cli.models.registry import build_policy, load_policy


def test_a_checkpoint_saved_with_another_table_size_still_loads(tmp_path, monkeypatch):
    cfg = load_config("configs/builtin_sft_pi0_flow_noise.yaml", ["actor.model.size=tiny"])
    torch.manual_seed(0)
    saved = build_policy(cfg.actor.model)
    saved.save_pretrained(tmp_path / "policy")
    rows = presets.PRESETS["tiny"].vocab_size
    assert stored_vocab_rows(tmp_path / "policy") == rows
    # the preset grows later (as pi0 mini's did, 320 -> 1024): the old checkpoint keeps its own rows
    monkeypatch.setitem(presets.PRESETS, "tiny", dataclasses.replace(presets.PRESETS["tiny"], vocab_size=rows + 64))
    loaded = load_policy(cfg.actor.model, tmp_path / "policy")
    embed = loaded.flow.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight
    assert embed.shape[0] == rows
    before = saved.flow.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight
    assert torch.equal(embed, before)

"""Real checkpoint assets for pi0 / pi0.5: PaliGemma's tokenizer.json and the norm-stats layouts (issue 23)."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models

from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.errors import AssetError, UserError
from rlvla_cli.models.openpi.norm_stats import (
    OpenPINormStats,
    find_norm_stats,
    load_norm_stats,
    match_norm_stats_key,
    norm_stats_ids,
)
from rlvla_cli.models.openpi.presets import PRESETS
from rlvla_cli.models.openpi.state_tokens import load_tokenizer, prompt_vocab_size

GEMMA_TEXT_PIECES = 256000
LOC_TOKENS, SEG_TOKENS = 1024, 128
PALIGEMMA_MODEL_VOCAB = GEMMA_TEXT_PIECES + LOC_TOKENS + SEG_TOKENS  # 257152, openpi gemma.py vocab_size


def paligemma_layout_tokenizer() -> Tokenizer:
    """A tokenizer.json in PaliGemma's real id layout (google/paligemma-3b-pt-224): <pad>=0, <eos>=1, <bos>=2,
    <unk>=3, Gemma text pieces up to 255999, <loc0000>..<loc1023> at 256000.., <seg000>..<seg127> at 257024..,
    and the added special token <image> at 257152 (so the file holds 257153 ids)."""
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    letters = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,.;:\n"
    for ch in letters:
        vocab[ch] = len(vocab)
    while len(vocab) < GEMMA_TEXT_PIECES:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    for i in range(LOC_TOKENS):
        vocab[f"<loc{i:04d}>"] = len(vocab)
    for i in range(SEG_TOKENS):
        vocab[f"<seg{i:03d}>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(["<pad>", "<eos>", "<bos>", "<unk>"])
    tok.add_special_tokens(["<image>"])
    return tok


def test_paligemma_tokenizer_json_fits_the_full_model(tmp_path):
    tok = paligemma_layout_tokenizer()
    assert tok.token_to_id("<image>") == 257152 and tok.token_to_id("<seg127>") == 257151
    assert tok.get_vocab_size() == 257153  # what the old check compared against the 257152-row embedding
    assert prompt_vocab_size(tok) == PALIGEMMA_MODEL_VOCAB
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.vocab_size == PALIGEMMA_MODEL_VOCAB == PRESETS["full"].vocab_size
    assert loaded.bos_id == 2

    # The policy's own size check accepts it at full size (built on the meta device: no 3B allocation).
    from rlvla_cli.models.openpi.policy import OpenPIPolicy

    cfg = OpenPIModelConfig(size="full", action_horizon=10, num_action_chunks=5)
    with torch.device("meta"):
        policy = OpenPIPolicy(cfg, loaded, OpenPINormStats())
    assert policy.flow.paligemma_with_expert.vlm.embed_tokens.weight.shape[0] == PALIGEMMA_MODEL_VOCAB

    tokens, mask = loaded.tokenize_batch(["pick up the bowl"], None, 24)
    assert tokens[0, 0] == 2 and int(tokens[mask].max()) < PALIGEMMA_MODEL_VOCAB
    with pytest.raises(UserError, match="special token"):
        loaded.tokenize_batch(["look at <image> now"], None, 24)


def write_stats(path, dims: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    feature = {"mean": [0.0] * dims, "std": [1.0] * dims, "q01": [-1.0] * dims, "q99": [1.0] * dims}
    path.write_text(json.dumps({"norm_stats": {"state": feature, "actions": feature}}))


def test_norm_stats_key_finds_the_converter_layout(tmp_path):
    """openpi's converter copies assets/ (examples/convert_jax_model_to_pytorch.py): assets/<asset_id>/."""
    write_stats(tmp_path / "assets" / "physical-intelligence" / "libero" / "norm_stats.json")
    write_stats(tmp_path / "assets" / "physical-intelligence" / "droid" / "norm_stats.json")
    assert norm_stats_ids(tmp_path) == ["assets/physical-intelligence/droid", "assets/physical-intelligence/libero"]
    found = find_norm_stats(str(tmp_path), None, "physical-intelligence/libero")
    assert found == tmp_path / "assets" / "physical-intelligence" / "libero" / "norm_stats.json"
    assert load_norm_stats(found).state is not None
    # the other spellings of the same directory
    assert find_norm_stats(str(tmp_path), None, "libero") == found
    assert find_norm_stats(str(tmp_path), None, "assets/physical-intelligence/libero/") == found


def test_norm_stats_key_finds_rlinf_layout(tmp_path):
    """RLinf reads <model_path>/<asset_id>/norm_stats.json (rlinf/models/embodiment/openpi/__init__.py)."""
    write_stats(tmp_path / "physical-intelligence" / "libero" / "norm_stats.json")
    found = find_norm_stats(str(tmp_path), None, "physical-intelligence/libero")
    assert found == tmp_path / "physical-intelligence" / "libero" / "norm_stats.json"


def test_norm_stats_key_error_lists_what_exists(tmp_path):
    write_stats(tmp_path / "assets" / "physical-intelligence" / "libero" / "norm_stats.json")
    with pytest.raises(AssetError, match="assets/physical-intelligence/libero") as err:
        find_norm_stats(str(tmp_path), None, "physical-intelligence/maniskill")
    assert "physical-intelligence/libero" in str(err.value)
    # a partial name is not a match: components must be whole
    assert match_norm_stats_key(["assets/physical-intelligence/libero"], "ibero") == []
    assert match_norm_stats_key(["assets/physical-intelligence/libero"], "intelligence/libero") == []


def test_norm_stats_path_may_be_a_directory(tmp_path):
    write_stats(tmp_path / "stats" / "norm_stats.json")
    assert find_norm_stats(None, str(tmp_path / "stats"), None) == tmp_path / "stats" / "norm_stats.json"

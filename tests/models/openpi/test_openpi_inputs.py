"""Prompt tokens (pi0 / pi0.5 formats, state bins), tokenizer loading, images, and the openpi config rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from openpi_helpers import tiny_config
from pydantic import ValidationError

from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.errors import AssetError
from rlvla_cli.models.openpi.policy import images_to_pixels
from rlvla_cli.models.openpi.state_tokens import (
    BYTE_TOKENIZER_VOCAB,
    build_prompt,
    byte_level_tokenizer,
    discretize_state,
    load_tokenizer,
)


def test_discretize_matches_numpy_digitize():
    state = torch.tensor([[-1.5, -1.0, -0.99, 0.0, 0.5, 0.9999, 1.0, 1.2], [0.1, -0.3, 0.7, 0.2, -0.8, 0.0, 0.3, 0.4]])
    expected = np.digitize(state.numpy(), bins=np.linspace(-1, 1, 257)[:-1]) - 1
    assert discretize_state(state).tolist() == expected.tolist()


def test_prompt_formats():
    assert build_prompt(" pick_up the\ncube ", None) == ("pick up the cube", "\n")
    first, second = build_prompt("open drawer", [0, 128, 255])
    assert first == "Task: open drawer, State: 0 128 255;\nAction: " and second == ""


def test_tokenize_batch_pads_and_truncates():
    tok = load_tokenizer(None)
    assert tok.vocab_size == BYTE_TOKENIZER_VOCAB and tok.bos_id == 2
    tokens, mask = tok.tokenize_batch(["ab", "a much longer instruction"], None, max_len=8)
    # "ab" -> <bos> a b \n then padding 0
    assert tokens[0, :4].tolist() == [2] + tok.encode("ab") + tok.encode("\n")
    assert mask[0].tolist() == [True] * 4 + [False] * 4 and tokens[0, 4:].tolist() == [0] * 4
    assert mask[1].all() and tokens[1, 0].item() == 2
    assert byte_level_tokenizer().decode(tok.encode("State: 12;")) == "State: 12;"


def test_tokenizer_from_directory(tmp_path):
    byte_level_tokenizer().save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(str(tmp_path))
    assert tok.encode("hi") == load_tokenizer(None).encode("hi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match="no tokenizer"):
        load_tokenizer(str(tmp_path / "empty"))


def test_images_to_pixels_range_and_padding():
    white = torch.full((2, 20, 40, 3), 255, dtype=torch.uint8)
    pixels = images_to_pixels(white, 32)
    assert pixels.shape == (2, 3, 32, 32)
    assert pixels.max().item() == pytest.approx(1.0) and pixels.min().item() == pytest.approx(-1.0)  # black pad
    assert pixels[:, :, 16, :].min().item() == pytest.approx(1.0)  # the middle rows are the image


def test_config_defaults_follow_the_variant():
    pi0, pi05 = OpenPIModelConfig(), OpenPIModelConfig(pi05=True, noise_method="flow_noise")
    assert (pi0.num_steps, pi0.max_token_len, pi0.discrete_state_input, pi0.joint_logprob) == (4, 48, False, False)
    assert (pi05.num_steps, pi05.max_token_len, pi05.discrete_state_input, pi05.joint_logprob) == (5, 200, True, True)
    assert pi0.lora_rank == 8 and pi0.train_expert_only and pi0.noise_logvar_range == (0.08, 0.16)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(is_lora=True, gradient_checkpointing=True), "gradient checkpointing is not supported"),
        (dict(noise_method="flow_noise", noise_level=0.3), "noise_level` only applies"),
        (dict(noise_logvar_range=(0.1, 0.2)), "noise_logvar_range` only applies"),
        (dict(noise_method="flow_noise", noise_logvar_range=(0.2, 0.1)), "min_std < max_std"),
        (dict(num_action_chunks=12, action_horizon=10), "exceeds `action_horizon`"),
        (dict(action_dim=40), "exceeds `model_action_dim`"),
        (dict(discrete_state_input=True), "needs `pi05: true`"),
        (dict(model_type="openvla"), "openpi"),
    ],
)
def test_config_rejects_inconsistent_settings(overrides, message):
    with pytest.raises(ValidationError, match=message):
        OpenPIModelConfig(**overrides)


def test_every_config_field_is_documented():
    missing = [name for name, field in OpenPIModelConfig.model_fields.items() if not field.description]
    assert missing == []


def test_tokenizer_larger_than_the_preset_vocabulary_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    vocab = {f"t{i}": i for i in range(400)} | {"<bos>": 400}
    Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0")).save(str(tmp_path / "tokenizer.json"))
    from rlvla_cli.errors import ConfigError
    from rlvla_cli.models.registry import build_policy

    with pytest.raises(ConfigError, match="vocabulary"):
        build_policy(tiny_config(tokenizer_path=str(tmp_path)))

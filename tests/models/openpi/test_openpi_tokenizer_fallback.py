"""state_tokens.built_in_tokenizer: presets with room for merges read instruction words as single tokens."""

from rlvla_cli.config.builtin_vocab import PALETTE, PHRASINGS
from rlvla_cli.models.openpi.presets import get_preset
from rlvla_cli.models.openpi.state_tokens import BYTE_TOKENIZER_VOCAB, built_in_tokenizer


def test_small_tables_spell_bytes_and_large_ones_merge_colour_words():
    byte_level = built_in_tokenizer(get_preset("tiny").vocab_size)
    words = built_in_tokenizer(get_preset("mini").vocab_size)
    assert byte_level.vocab_size == BYTE_TOKENIZER_VOCAB
    assert len(byte_level.encode("green")) == 5
    assert words.vocab_size <= get_preset("mini").vocab_size
    phrasing = PHRASINGS[2]
    encoded = [words.encode(phrasing.format(c=name)) for name, _ in PALETTE]
    # every colour is one token at the same position, so the instructions differ in exactly one id
    assert len({len(ids) for ids in encoded}) == 1
    differing = {i for ids in encoded for i, token in enumerate(ids) if token != encoded[0][i]}
    assert len(differing) == 1
    (colour_position,) = differing
    assert len({ids[colour_position] for ids in encoded}) == len(PALETTE)

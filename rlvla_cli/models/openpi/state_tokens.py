"""Prompts and tokens for pi0 / pi0.5 (openpi's PaliGemma prompt format), including pi0.5's discretised state.

pi0 prompt: ``<bos> + task + "\\n"`` (the newline is tokenised separately as the start-of-answer token).
pi0.5 prompt: ``<bos> + "Task: {task}, State: {bins};\\nAction: "`` where bins are the normalised state
(in [-1, 1]) put into 256 uniform bins, written as space-separated integers (np.digitize convention).
Tokens are right-padded with id 0 to ``max_token_len`` and truncated beyond it; the mask marks real tokens.

Vocabulary size: PaliGemma's tokenizer.json holds 257152 model ids (Gemma's 256000 text pieces + 1024 ``<locNNNN>`` +
128 ``<segNNN>`` tokens, big_vision's PaliGemma tokenizer) plus the added special token ``<image>`` at id 257152,
so ``get_vocab_size()`` says 257153; openpi's embedding has 257152 rows (``gemma.py`` ``vocab_size=257_152``) and
openpi never puts ``<image>`` into a prompt (images enter as embeddings). ``prompt_vocab_size`` therefore counts
the ids a prompt can produce: the model vocabulary and the non-special added tokens; special added tokens beyond
it are refused if a prompt ever spells one.

The tokenizer comes from the checkpoint directory (``tokenizer.json``, or a transformers tokenizer such as
PaliGemma's Gemma SentencePiece model); random-weight presets use a built-in byte-level tokenizer (260 ids)
made with the ``tokenizers`` library, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from rlvla_cli.errors import AssetError, UserError

STATE_BINS = 256
BYTE_TOKENIZER_VOCAB = 260  # 4 specials + 256 byte symbols
_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]


def discretize_state(state: torch.Tensor, num_bins: int = STATE_BINS) -> torch.Tensor:
    """Bin a normalised state ``[B, S]`` (expected in [-1, 1]) into ints ``[B, S]`` in [0, num_bins - 1].

    Same as openpi's ``np.digitize(state, np.linspace(-1, 1, num_bins + 1)[:-1]) - 1`` (values below -1 give -1).
    """
    edges = torch.linspace(-1.0, 1.0, num_bins + 1, dtype=torch.float64)[:-1]
    return torch.bucketize(state.double().contiguous(), edges, right=True) - 1


def build_prompt(task: str, state_bins: Sequence[int] | None) -> tuple[str, str]:
    """openpi's prompt for one sample: (text encoded with BOS, text encoded after it without BOS)."""
    cleaned = task.strip().replace("_", " ").replace("\n", " ")
    if state_bins is None:
        return cleaned, "\n"
    state_str = " ".join(str(int(b)) for b in state_bins)
    return f"Task: {cleaned}, State: {state_str};\nAction: ", ""


class PromptTokenizer:
    """Text -> ids with an explicit BOS; wraps a ``tokenizers.Tokenizer`` or a transformers tokenizer."""

    def __init__(self, backend, bos_id: int, vocab_size: int):
        self.backend = backend
        self.bos_id = bos_id
        self.vocab_size = vocab_size  # ids a prompt may produce (the embedding must have at least this many rows)

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        if isinstance(self.backend, Tokenizer):
            ids = list(self.backend.encode(text, add_special_tokens=False).ids)
        else:
            ids = list(self.backend.encode(text, add_special_tokens=False))
        if ids and max(ids) >= self.vocab_size:
            raise UserError(
                f"the prompt {text!r} spells a special token (id {max(ids)}) outside the model's {self.vocab_size} "
                "token embeddings",
                key="env",
                fix="remove markup such as <image> from the task description",
            )
        return ids

    def tokenize_batch(
        self, tasks: Sequence[str], state_bins: torch.Tensor | None, max_len: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts for a batch -> (tokens int64 ``[B, max_len]``, mask bool ``[B, max_len]``)."""
        tokens = torch.zeros(len(tasks), max_len, dtype=torch.long)
        mask = torch.zeros(len(tasks), max_len, dtype=torch.bool)
        for row, task in enumerate(tasks):
            bins = None if state_bins is None else state_bins[row].tolist()
            first, second = build_prompt(task, bins)
            ids = ([self.bos_id] + self.encode(first) + self.encode(second))[:max_len]
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = True
        return tokens, mask


def byte_level_tokenizer() -> Tokenizer:
    """A byte-level tokenizer with ids <pad>=0, <eos>=1, <bos>=2, <unk>=3, bytes 4..259 (no merges)."""
    vocab = {token: index for index, token in enumerate(_SPECIALS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def prompt_vocab_size(tok: Tokenizer) -> int:
    """1 + the largest id a prompt can produce: model vocabulary and non-special added tokens (see module doc).

    For PaliGemma's tokenizer.json: 257152 (``<image>``, a special added token at 257152, is not counted)."""
    ids = list(tok.get_vocab(with_added_tokens=False).values())
    ids += [index for index, added in tok.get_added_tokens_decoder().items() if not added.special]
    # Special added tokens inside the model range (<pad>, <bos>, ...) are counted through the model vocabulary.
    return max(ids, default=-1) + 1


def _from_tokenizer_json(path: Path) -> PromptTokenizer:
    tok = Tokenizer.from_file(str(path))
    bos = next((tok.token_to_id(name) for name in ("<bos>", "<s>") if tok.token_to_id(name) is not None), None)
    if bos is None:
        raise AssetError(f"{path} has no <bos> token", fix="use the PaliGemma tokenizer of the checkpoint")
    return PromptTokenizer(tok, bos, prompt_vocab_size(tok))


def _hf_prompt_vocab_size(hf) -> int:
    """``prompt_vocab_size`` for a transformers tokenizer (its fast backend, else the slow vocabulary)."""
    backend = getattr(hf, "backend_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return prompt_vocab_size(backend)
    special = set(getattr(hf, "all_special_ids", []))
    extra = [index for index in hf.get_added_vocab().values() if index not in special]
    return max([int(hf.vocab_size) - 1, *extra]) + 1


# Smallest embedding table that gets the word-merging tokenizer (``built_in_tokenizer``); smaller ones get bytes.
WORD_TOKENIZER_MIN_VOCAB = 1024


def built_in_tokenizer(vocab_size: int) -> PromptTokenizer:
    """The tokenizer of a random-weight preset whose embedding table has ``vocab_size`` rows.

    With room for merges (>= ``WORD_TOKENIZER_MIN_VOCAB``): the OpenVLA fallback BPE (``models/tokenization.py``),
    whose merges make instruction words such as colours single tokens, as PaliGemma's SentencePiece vocabulary
    does; a from-scratch model then reads "red" as one id instead of composing it from bytes (on the built-in
    task the byte-level pi0 ``mini`` went to a wrong object as often as to the named one, docs/results.md).
    Smaller tables keep the byte-level tokenizer."""
    if vocab_size < WORD_TOKENIZER_MIN_VOCAB:
        tok = byte_level_tokenizer()
        return PromptTokenizer(tok, tok.token_to_id("<bos>"), prompt_vocab_size(tok))
    from rlvla_cli.models.tokenization import build_fallback_tokenizer

    tok = build_fallback_tokenizer(vocab_size).backend_tokenizer
    return PromptTokenizer(tok, tok.token_to_id("<s>"), prompt_vocab_size(tok))


def load_tokenizer(model_path: str | None, tokenizer_path: str | None = None,
                   vocab_size: int = BYTE_TOKENIZER_VOCAB) -> PromptTokenizer:
    """The prompt tokenizer: ``tokenizer_path`` / ``model_path`` (tokenizer.json or a transformers tokenizer),
    or ``built_in_tokenizer(vocab_size)`` when neither is given (random-weight presets)."""
    directory = tokenizer_path or model_path
    if directory is None:
        return built_in_tokenizer(vocab_size)
    path = Path(directory)
    if path.is_file() and path.suffix == ".json":
        return _from_tokenizer_json(path)
    if (path / "tokenizer.json").is_file():
        return _from_tokenizer_json(path / "tokenizer.json")
    if (path / "tokenizer.model").is_file() or (path / "tokenizer_config.json").is_file():
        try:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(str(path))
        except Exception as err:  # missing sentencepiece, corrupt files, ...
            raise AssetError(
                f"could not load the tokenizer in {path} ({err})",
                key="actor.model.tokenizer_path",
                fix="put PaliGemma's tokenizer.json (or tokenizer.model with `pip install sentencepiece`) there",
            ) from err
        return PromptTokenizer(hf, int(hf.bos_token_id), _hf_prompt_vocab_size(hf))
    raise AssetError(
        f"no tokenizer in {path} (looked for tokenizer.json, tokenizer.model, tokenizer_config.json)",
        key="actor.model.tokenizer_path",
        fix="copy PaliGemma's tokenizer (google/paligemma-3b-pt-224) into the checkpoint directory or set "
        "actor.model.tokenizer_path",
    )

"""Tokenizers for the OpenVLA family: the checkpoint's own (transformers, local files only) or, for randomly
initialised models, a byte-level BPE built in memory (no downloads) whose vocabulary is padded with filler
tokens up to the preset's base size, so the action tokens (the last 256 ids) sit where Llama-2's do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from rlvla_cli.errors import AssetError

PROMPT = "In: What action should the robot take to {task}?\nOut:"
PAD_TOKEN = "<PAD>"


# Words robot instructions use, so the fallback BPE learns merges for them (prompts stay ~20-40 tokens).
_CORPUS_WORDS = (
    "in what action should the robot take to out pick up put place move push pull open close turn on off grasp "
    "grab lift stack insert reach get the a an and then of in on into onto from to with at top bottom left right "
    "front back side middle center red green blue yellow purple orange black white brown pink gray block cube "
    "object square one bowl plate cup mug spoon fork knife towel drawer cabinet microwave stove sink basket box "
    "bottle can carrot eggplant peg hole sphere gripper table shelf door handle lid pot pan"
).split()


def build_fallback_tokenizer(base_vocab_size: int):
    """A ``PreTrainedTokenizerFast`` built in memory: byte-level BPE (every text encodes) with merges learned
    from a small built-in word list and the prompt template, ``<s>`` prepended like Llama's, ``<PAD>`` added
    after the base vocabulary, filler tokens up to ``base_vocab_size`` (``tokenizer.vocab_size`` equals it)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if base_vocab_size < len(alphabet) + len(specials) + 256:
        raise ValueError(f"base vocabulary {base_vocab_size} leaves no room beside the byte alphabet and 256 actions")
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    budget = min(base_vocab_size - 256, 4000)  # keep the last 256 ids (the action tokens) free of text
    trainer = trainers.BpeTrainer(vocab_size=budget, special_tokens=specials, initial_alphabet=alphabet,
                                  show_progress=False)
    corpus = [PROMPT.format(task=" ".join(_CORPUS_WORDS[i:i + 6])) for i in range(len(_CORPUS_WORDS))]
    trainer_tok.train_from_iterator(corpus * 4 + _CORPUS_WORDS, trainer)
    model = json.loads(trainer_tok.to_str())["model"]
    vocab, merges = dict(model["vocab"]), [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                            for m in model["merges"]]
    while len(vocab) < base_vocab_size:
        vocab[f"<extra_{len(vocab)}>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_special_tokens({"pad_token": PAD_TOKEN})
    return fast


def load_tokenizer(model_path: str | Path, trust_remote_code: bool = False):
    """The tokenizer saved in a checkpoint directory (tokenizer.json / tokenizer.model + tokenizer_config.json),
    local files only; a pad token is added if the checkpoint has none (OpenVLA adds ``<PAD>``)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # config.json says model_type "openvla", which transformers warns about
    try:
        tok = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise AssetError(f"no usable tokenizer in {model_path} ({str(err).splitlines()[0]})",
                         key="actor.model.model_path",
                         fix="the checkpoint needs tokenizer.json and tokenizer_config.json") from err
    finally:
        hf_logging.set_verbosity(previous)
    if tok.pad_token_id is None:
        tok.add_special_tokens({"pad_token": PAD_TOKEN})
    return tok


class PromptEncoder:
    """Instructions -> OpenVLA prompts -> fixed-width token ids.

    Every prompt is ``<s>`` + tokens of ``PROMPT`` (+ Llama's empty "▁" token, id 29871, when the vocabulary
    has it, as OpenVLA's ``predict_action`` appends). ``encode`` returns the tokens *after* ``<s>``, left-padded
    to ``width = max_prompt_length - 1``: ids int64 ``[B, width]`` and mask int64 ``[B, width]`` (the image
    patches go between ``<s>`` and these, so padding sits in the middle of the sequence, masked out; positions
    come from the mask, so a padded prompt sees the same positions as an unpadded one).
    """

    def __init__(self, tokenizer, max_prompt_length: int):
        self.tokenizer = tokenizer
        self.width = max_prompt_length - 1
        self.bos_id = int(tokenizer.bos_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        space = tokenizer.convert_tokens_to_ids("▁")
        self.suffix_id = space if isinstance(space, int) and space != tokenizer.unk_token_id else None
        self._warned = False

    def token_ids(self, task: str) -> list[int]:
        ids = self.tokenizer(PROMPT.format(task=task.strip().lower()))["input_ids"]
        if ids and ids[0] == self.bos_id:
            ids = ids[1:]
        if self.suffix_id is not None and (not ids or ids[-1] != self.suffix_id):
            ids = ids + [self.suffix_id]
        return ids

    def encode(self, tasks: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(tasks), self.width), self.pad_id, dtype=torch.int64)
        mask = torch.zeros(len(tasks), self.width, dtype=torch.int64)
        for row, task in enumerate(tasks):
            tokens = self.token_ids(task)
            if len(tokens) > self.width:
                if not self._warned:
                    warnings.warn(f"prompt of {len(tokens) + 1} tokens exceeds max_prompt_length "
                                  f"{self.width + 1}; keeping its end (raise actor.model.max_prompt_length)",
                                  stacklevel=2)
                    self._warned = True
                tokens = tokens[-self.width:]
            if tokens:
                ids[row, -len(tokens):] = torch.tensor(tokens)
                mask[row, -len(tokens):] = 1
        return ids, mask

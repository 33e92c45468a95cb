"""A download-free instruction encoder for the small policy: hashed words -> embeddings -> mean or GRU."""

from __future__ import annotations

import re
import zlib

import torch
from torch import nn

_WORD = re.compile(r"[a-z0-9]+")


class HashWordTokenizer:
    """Lower-cases, splits on non-alphanumerics and hashes each word (CRC32, stable across processes and
    machines) into ``vocab_size - 1`` buckets; id 0 is padding. Results are cached per instruction string."""

    def __init__(self, vocab_size: int, max_words: int):
        self.vocab_size = vocab_size
        self.max_words = max_words
        self._cache: dict[str, list[int]] = {}

    def word_ids(self, text: str) -> list[int]:
        """Ids of the first ``max_words`` words of ``text`` (no padding)."""
        ids = self._cache.get(text)
        if ids is None:
            words = _WORD.findall(text.lower())[: self.max_words]
            ids = [1 + zlib.crc32(w.encode()) % (self.vocab_size - 1) for w in words]
            if len(self._cache) < 100_000:
                self._cache[text] = ids
        return ids

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """``texts`` (B strings) -> int64 ``[B, max_words]``, right-padded with 0."""
        out = torch.zeros(len(texts), self.max_words, dtype=torch.int64)
        for row, text in enumerate(texts):
            ids = self.word_ids(text)
            if ids:
                out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out


class InstructionEncoder(nn.Module):
    """Word ids ``[B, W]`` -> instruction feature ``[B, dim]`` (masked mean of embeddings, or a GRU's last
    state over the non-padding words)."""

    def __init__(self, vocab_size: int, dim: int, kind: str = "mean"):
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.gru = nn.GRU(dim, dim, batch_first=True) if kind == "gru" else None

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        mask = (word_ids > 0).to(self.embed.weight.dtype)  # [B, W]
        emb = self.embed(word_ids)  # [B, W, D]
        if self.gru is None:
            return (emb * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        lengths = mask.sum(1).long().clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)
        return last[-1]

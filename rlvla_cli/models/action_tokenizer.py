"""OpenVLA's action tokenisation: normalised actions in [-1, 1] <-> the last ``n_bins`` vocabulary ids.

Semantics of OpenVLA's ``ActionTokenizer`` (Kim et al. 2024, prismatic/vla/action_tokenizer.py):
``edges = linspace(-1, 1, n_bins)``; a value ``x`` (clipped to [-1, 1]) gets ``d = digitize(x, edges)`` in
``1..n_bins`` and the token id ``vocab_end - d`` where ``vocab_end`` is the tokenizer's base vocabulary size
(32000 for Llama-2, so ids 31744..31999). Decoding takes ``k = clamp(vocab_end - id - 1, 0, n_bins - 2)`` and
returns the centre of bin ``k``, ``(edges[k] + edges[k + 1]) / 2``.

We name the slot ``bin = vocab_end - 1 - id`` in ``0..n_bins-1`` (``bin = d - 1``); logits over the action
tokens are ordered by bin: column ``j`` of ``action_logits`` is token ``vocab_end - 1 - j``.
"""

from __future__ import annotations

import torch


class ActionTokenizer:
    """Bins ``[-1, 1]`` uniformly into ``n_bins`` action tokens ending (exclusive) at ``vocab_end``."""

    def __init__(self, vocab_end: int, n_bins: int = 256):
        if vocab_end < n_bins:
            raise ValueError(f"vocabulary {vocab_end} is smaller than the {n_bins} action bins")
        self.vocab_end, self.n_bins = vocab_end, n_bins
        # float64 like the reference's np.linspace: float32 edges bin ~1 in 2000 values at an edge differently
        self.edges = torch.linspace(-1.0, 1.0, n_bins, dtype=torch.float64)
        self.centers = (self.edges[:-1] + self.edges[1:]) / 2  # [n_bins - 1], float64

    @property
    def token_ids(self) -> torch.Tensor:
        """int64 ``[n_bins]``: the token id of each bin, bin 0 first (ids descend)."""
        return self.vocab_end - 1 - torch.arange(self.n_bins)

    def actions_to_bins(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions ``[...]`` -> bins int64 ``[...]`` in ``0..n_bins-1`` (``digitize - 1``)."""
        x = actions.double().clamp(-1.0, 1.0)  # np.digitize compares in float64
        return torch.bucketize(x, self.edges.to(x.device), right=True) - 1

    def bins_to_actions(self, bins: torch.Tensor) -> torch.Tensor:
        """Bins ``[...]`` -> normalised actions float32 ``[...]`` (bin centres; the top two bins share one)."""
        centers = self.centers.to(bins.device)
        return centers[bins.clamp(0, self.n_bins - 2)].float()

    def bins_to_tokens(self, bins: torch.Tensor) -> torch.Tensor:
        """Bins -> vocabulary ids."""
        return self.vocab_end - 1 - bins

    def tokens_to_bins(self, tokens: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids -> bins (ids outside the action range give bins outside ``0..n_bins-1``)."""
        return self.vocab_end - 1 - tokens

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions -> token ids."""
        return self.bins_to_tokens(self.actions_to_bins(actions))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids -> normalised actions."""
        return self.bins_to_actions(self.tokens_to_bins(tokens))

"""OpenVLA-OFT (Kim et al. 2025) with discrete action tokens: all C * A action tokens in one parallel pass.

Sequence, as the reference builds it (moojink/openvla-oft ``modeling_prismatic.py: predict_action``, RLinf
``rlinf/models/embodiment/openvla_oft/{rlinf,official}/openvla_oft_action_model.py``)::

    [<s>, patches (I * N), proprio token?, prompt ... "▁"(29871), C*A empty action slots, </s>?]

The action slots' input embeddings are zero (OFT's empty action embeddings); ``implement_version: official``
appends the ``</s>`` stop token (moojink, RLinf ``official``), ``rlinf`` does not (RLinf's ``_build_embedding``
drops it). Attention is bidirectional over the whole sequence, padding blocked as keys: moojink's transformers
fork (``LlamaSdpaAttention``, commit bc339d9; moojink/openvla-oft issues 27 and 89) replaces the causal mask by
its last row. Logits of action token j are read at position ``prefix_len - 1 + j`` (moojink slices from
``NUM_PATCHES + NUM_PROMPT_TOKENS``, RLinf takes ``logits[:, -C*A-1:-1]``): the last prompt token predicts the
first action, the last slot's output is unused. Tokens are sampled independently; ``evaluate`` repeats the
identical pass, so log-probs match exactly.
Optional proprio token (``use_proprio``: states normalised with the proprio q01 / q99, then OFT's projector
fc1 -> GELU -> fc2) after the patches, and a wrist image whose patches follow the main image's.
Values: the hidden state of the last prompt token (RLinf: ``hidden[:, -C*A-1]``) -> ``[B, 1]`` (chunk_level) or
``[B, C]`` (action_level).
"""

from __future__ import annotations

import torch
from torch import nn

from rlvla_cli.config.model import OpenVLAOFTModelConfig
from rlvla_cli.errors import UserError
from rlvla_cli.models.base import EvaluateOutput, Mode, Obs, PolicyOutput, SamplingParams
from rlvla_cli.models.normalization import normalize_proprio
from rlvla_cli.models.openvla_builder import build_prismatic_policy
from rlvla_cli.models.openvla_common import PrismaticPolicy, sample_bins, token_logprob_entropy
from rlvla_cli.models.registry import register_policy


def oft_attention_mask(mask: torch.Tensor, num_after: int, dtype: torch.dtype) -> torch.Tensor:
    """2-D mask int64 ``[B, L]`` of the prefix -> additive 4-D mask ``[B, 1, L + M, L + M]`` (0 = attend, dtype min
    = blocked) where M = ``num_after`` always-real positions follow the prefix: every query attends to every real
    token (bidirectional), padding is blocked as a key. This is the mask moojink's fork builds from the causal one
    (its last row, repeated)."""
    batch = mask.shape[0]
    keys = torch.cat([mask.bool(), mask.new_ones(batch, num_after, dtype=torch.bool)], dim=1)  # [B, T]
    total = keys.shape[1]
    out = torch.zeros(batch, 1, total, total, dtype=dtype, device=mask.device)
    return out.masked_fill(~keys.view(batch, 1, 1, total), torch.finfo(dtype).min)


class ProprioProjector(nn.Module):
    """OFT's proprio projector: states ``[B, S]`` -> one token ``[B, 1, H]`` (fc1 -> GELU -> fc2)."""

    def __init__(self, state_dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(state_dim, hidden)
        self.act_fn1 = nn.GELU()
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act_fn1(self.fc1(states))).unsqueeze(1)


class OpenVLAOFTPolicy(PrismaticPolicy):
    """Parallel-decoding OpenVLA-OFT; ``forward_inputs`` as in ``openvla_common``."""

    def __init__(self, cfg: OpenVLAOFTModelConfig, vla, tokenizer, stats, raw_stats, image_size):
        super().__init__(cfg, vla, tokenizer, stats, raw_stats, image_size)
        hidden = vla.dims.llm.hidden_size
        self.proprio_projector = ProprioProjector(cfg.state_dim, hidden) if cfg.use_proprio else None

    def inputs_from_obs(self, obs: Obs) -> dict[str, torch.Tensor]:
        inputs = super().inputs_from_obs(obs)
        device = self._device()
        if self.cfg.use_wrist_image:
            if obs.get("wrist_images") is None:
                raise UserError("use_wrist_image is on but the env gives no `wrist_images`",
                                key="actor.model.use_wrist_image", fix="turn it off or use an env with a wrist camera")
            inputs["wrist_images"] = obs["wrist_images"].to(device)
        if self.proprio_projector is not None:
            states = obs.get("states")
            if states is None or states.shape[-1] != self.cfg.state_dim:
                got = None if states is None else tuple(states.shape)
                raise UserError(f"use_proprio expects `states` [B, {self.cfg.state_dim}] but got {got}",
                                key="actor.model.state_dim", fix="set actor.model.state_dim to the env's state size")
            inputs["states"] = states.to(device=device, dtype=torch.float32)
        return inputs

    def extra_tokens(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if self.proprio_projector is None:
            return None
        states = normalize_proprio(inputs["states"], self.stats)
        return self.proprio_projector(states.to(self.proprio_projector.fc1.weight.dtype))

    def _parallel_pass(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> hidden states that predict the action tokens ``[B, N, H]`` (positions ``prefix_len - 1 + j``) and
        that of the last prompt token ``[B, H]`` (see the module docstring)."""
        embeds, mask = self.prefix(inputs)
        batch, prefix_len, width = embeds.shape
        parts = [embeds, embeds.new_zeros(batch, self.num_tokens, width)]
        if self.cfg.implement_version == "official":
            stop = torch.full((batch, 1), self.tokenizer.eos_token_id, dtype=torch.long, device=embeds.device)
            parts.append(self.vla.embed_tokens(stop).to(embeds.dtype))
        sequence = torch.cat(parts, dim=1)
        after = sequence.shape[1] - prefix_len
        full_mask = torch.cat([mask, mask.new_ones(batch, after)], dim=1)
        hidden = self.run_lm(sequence, full_mask, attention_mask=oft_attention_mask(mask, after, embeds.dtype))
        return hidden[:, prefix_len - 1: prefix_len - 1 + self.num_tokens], hidden[:, prefix_len - 1]

    @torch.no_grad()
    def get_values(self, obs: Obs) -> torch.Tensor:
        """Values from the same full pass ``predict`` runs (the prefix attends to the action slots)."""
        if self.value_head is None:
            raise RuntimeError("this policy has no value head (set actor.model.add_value_head: true)")
        return self.values_from(self._parallel_pass(self.inputs_from_obs(obs))[1])

    @torch.no_grad()
    def predict(self, obs: Obs, mode: Mode = "train", sampling: SamplingParams | None = None) -> PolicyOutput:
        sampling = sampling or SamplingParams.for_mode(None, mode)
        inputs = self.inputs_from_obs(obs)
        slot_hidden, last_prefix = self._parallel_pass(inputs)
        batch = slot_hidden.shape[0]
        temperature = torch.full((batch,), float(sampling.temperature), device=slot_hidden.device)
        scaled = self.scaled_action_logits(slot_hidden, temperature)  # [B, N, bins]
        bins = sample_bins(scaled.flatten(0, 1), sampling).view(batch, self.num_tokens)
        logprobs, _ = token_logprob_entropy(scaled, bins, with_entropy=False)
        inputs.update(action_tokens=self.action_token_ids[bins], temperature=temperature)
        return PolicyOutput(
            actions=self.env_actions(bins),
            logprobs=logprobs.view(batch, self.num_action_chunks, self.action_dim),
            values=self.values_from(last_prefix),
            forward_inputs=inputs,
        )

    def evaluate(
        self, forward_inputs: dict[str, torch.Tensor], compute_entropy: bool = True, compute_values: bool = True
    ) -> EvaluateOutput:
        slot_hidden, last_prefix = self._parallel_pass(forward_inputs)
        batch = slot_hidden.shape[0]
        scaled = self.scaled_action_logits(slot_hidden, forward_inputs["temperature"])
        bins = self.action_tokenizer.tokens_to_bins(forward_inputs["action_tokens"])
        logprobs, entropy = token_logprob_entropy(scaled, bins, compute_entropy)
        shape = (batch, self.num_action_chunks, self.action_dim)
        values = self.values_from(last_prefix) if compute_values else None
        return EvaluateOutput(logprobs.view(shape), entropy.view(shape) if entropy is not None else None, values)


@register_policy("openvla_oft")
def build_openvla_oft_policy(cfg: OpenVLAOFTModelConfig, device: str) -> OpenVLAOFTPolicy:
    """Registry builder (see ``openvla_builder``)."""
    return build_prismatic_policy(OpenVLAOFTPolicy, cfg, device)

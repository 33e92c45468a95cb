"""OpenVLA (Kim et al. 2024): the C * A action tokens are decoded autoregressively with a KV cache, sampling
restricted to the 256 action tokens; the value head reads the hidden state before the first action token.

Token-level log-probs ``[B, C, A]`` come from ``log_softmax(action_logits / temperature)``; ``evaluate``
recomputes them by teacher forcing the stored ``action_tokens`` in one pass.
"""

from __future__ import annotations

import torch

from rlvla_cli.config.model import OpenVLAModelConfig
from rlvla_cli.models.base import EvaluateOutput, Mode, Obs, PolicyOutput, SamplingParams
from rlvla_cli.models.openvla_builder import build_prismatic_policy
from rlvla_cli.models.openvla_common import PrismaticPolicy, sample_bins, token_logprob_entropy
from rlvla_cli.models.prismatic import positions_from_mask
from rlvla_cli.models.registry import register_policy


class OpenVLAPolicy(PrismaticPolicy):
    """Autoregressive OpenVLA; ``forward_inputs`` as documented in ``openvla_common``."""

    @torch.no_grad()
    def predict(self, obs: Obs, mode: Mode = "train", sampling: SamplingParams | None = None) -> PolicyOutput:
        with self.inference_mode():
            return self._decode(obs, sampling or SamplingParams.for_mode(None, mode))

    def _decode(self, obs: Obs, sampling: SamplingParams) -> PolicyOutput:
        inputs = self.inputs_from_obs(obs)
        embeds, mask = self.prefix(inputs)
        batch = embeds.shape[0]
        temperature = torch.full((batch,), float(sampling.temperature), device=embeds.device)
        lm = self.vla.language_model.model
        positions = positions_from_mask(mask)
        out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
        hidden, cache = out.last_hidden_state[:, -1], out.past_key_values
        values = self.values_from(hidden)
        next_position = positions[:, -1:] + 1
        bins, logprobs = [], []
        for step in range(self.num_tokens):
            scaled = self.scaled_action_logits(hidden, temperature)
            chosen = sample_bins(scaled, sampling)
            logprobs.append(token_logprob_entropy(scaled, chosen, with_entropy=False)[0])
            bins.append(chosen)
            if step + 1 < self.num_tokens:
                mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
                token_embeds = self.vla.embed_tokens(self.action_token_ids[chosen]).unsqueeze(1)
                out = lm(inputs_embeds=token_embeds, attention_mask=mask, position_ids=next_position,
                         past_key_values=cache, use_cache=True)
                hidden, cache = out.last_hidden_state[:, -1], out.past_key_values
                next_position = next_position + 1
        bins_t = torch.stack(bins, dim=1)
        inputs.update(action_tokens=self.action_token_ids[bins_t], temperature=temperature)
        return PolicyOutput(
            actions=self.env_actions(bins_t),
            logprobs=torch.stack(logprobs, dim=1).view(batch, self.num_action_chunks, self.action_dim),
            values=values,
            forward_inputs=inputs,
        )

    def evaluate(
        self, forward_inputs: dict[str, torch.Tensor], compute_entropy: bool = True, compute_values: bool = True
    ) -> EvaluateOutput:
        embeds, mask = self.prefix(forward_inputs)
        tokens = forward_inputs["action_tokens"]
        batch, prefix_len = embeds.shape[0], embeds.shape[1]
        teacher = self.vla.embed_tokens(tokens[:, :-1])
        full = torch.cat([embeds, teacher.to(embeds.dtype)], dim=1)
        full_mask = torch.cat([mask, mask.new_ones(batch, tokens.shape[1] - 1)], dim=1)
        hidden = self.run_lm(full, full_mask)
        action_hidden = hidden[:, prefix_len - 1: prefix_len - 1 + self.num_tokens]
        scaled = self.scaled_action_logits(action_hidden, forward_inputs["temperature"])
        bins = self.action_tokenizer.tokens_to_bins(tokens)
        logprobs, entropy = token_logprob_entropy(scaled, bins, compute_entropy)
        shape = (batch, self.num_action_chunks, self.action_dim)
        values = self.values_from(hidden[:, prefix_len - 1]) if compute_values else None
        return EvaluateOutput(logprobs.view(shape), entropy.view(shape) if entropy is not None else None, values)


@register_policy("openvla")
def build_openvla_policy(cfg: OpenVLAModelConfig, device: str) -> OpenVLAPolicy:
    """Registry builder (see ``openvla_builder``)."""
    return build_prismatic_policy(OpenVLAPolicy, cfg, device)

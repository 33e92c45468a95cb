"""What OpenVLA and OpenVLA-OFT share: building (preset or local checkpoint), observation encoding, action
sampling over the 256 action tokens, un-normalisation, LoRA, saving.

``forward_inputs`` (batch first): ``images`` uint8 ``[B, H, W, 3]`` (+ ``wrist_images`` for OFT with a wrist
camera), ``prompt_ids`` / ``prompt_mask`` int64 ``[B, max_prompt_length - 1]``, ``states`` ``[B, S]`` (OFT with
proprio), ``action_tokens`` int64 ``[B, C * A]`` (vocabulary ids), ``temperature`` ``[B]``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from rlvla_cli.errors import ConfigError
from rlvla_cli.models.action_tokenizer import ActionTokenizer
from rlvla_cli.models.base import Obs, SamplingParams, VLAPolicy
from rlvla_cli.models.normalization import NormStats, normalize_actions, select_stats, unnormalize_actions
from rlvla_cli.models.prismatic import PrismaticVLA
from rlvla_cli.models.tokenization import PromptEncoder
from rlvla_cli.models.value_head import ValueHead
from rlvla_cli.models.vision import preprocess_images

# RLinf's default LoRA targets (rlinf/models/__init__.py) that exist in the modules rlvla builds: every linear
# layer of the towers, projector and Llama, and lm_head (its adapter reaches the action logits).
OPENVLA_LORA_TARGETS = ["qkv", "proj", "fc1", "fc2", "fc3", "q_proj", "k_proj", "v_proj", "o_proj",
                        "gate_proj", "up_proj", "down_proj", "lm_head"]


def sample_bins(scaled_logits: torch.Tensor, sampling: SamplingParams) -> torch.Tensor:
    """scaled_logits fp32 ``[B, n_bins]`` (already divided by the temperature) -> bins int64 ``[B]``: argmax when
    not sampling, else a draw restricted to the top-k / top-p set."""
    if not sampling.do_sample:
        return scaled_logits.argmax(-1)
    logits = scaled_logits.clone()
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = logits.topk(sampling.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > sampling.top_p  # keep the smallest prefix with mass >= top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


def token_logprob_entropy(
    scaled_logits: torch.Tensor, bins: torch.Tensor, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """scaled_logits ``[..., n_bins]``, bins ``[...]`` -> log-prob of each bin ``[...]`` and entropy ``[...]``."""
    logp = scaled_logits.log_softmax(-1)
    chosen = logp.gather(-1, bins.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1) if with_entropy else None
    return chosen, entropy


class PrismaticPolicy(VLAPolicy):
    """Shared body of OpenVLA / OpenVLA-OFT (see the module docstring)."""

    def __init__(self, cfg, vla: PrismaticVLA, tokenizer, stats: NormStats, raw_stats: dict | None, image_size: int):
        super().__init__()
        self.cfg = cfg
        self.action_dim, self.num_action_chunks = cfg.action_dim, cfg.num_action_chunks
        self.num_tokens = cfg.action_dim * cfg.num_action_chunks
        self.vla = vla
        self.tokenizer, self.stats, self.raw_stats, self.image_size = tokenizer, stats, raw_stats, image_size
        self.prompts = PromptEncoder(tokenizer, cfg.max_prompt_length)
        self.action_tokenizer = ActionTokenizer(tokenizer.vocab_size, cfg.n_action_bins)
        self.register_buffer("action_token_ids", self.action_tokenizer.token_ids, persistent=False)
        hidden = vla.dims.llm.hidden_size
        self.value_head = ValueHead(hidden, cfg.num_values) if cfg.add_value_head else None
        self.lora_config = None

    # ---- inputs ----------------------------------------------------------------------------------------
    @contextmanager
    def inference_mode(self):
        """Eval mode for the duration (transformers turns the KV cache off while training with gradient
        checkpointing), restoring the previous mode after."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def _device(self) -> torch.device:
        return self.action_token_ids.device

    def inputs_from_obs(self, obs: Obs) -> dict[str, torch.Tensor]:
        """Observation dict -> the observation part of ``forward_inputs``."""
        ids, mask = self.prompts.encode(list(obs["task_descriptions"]))
        device = self._device()
        return {"images": obs["main_images"].to(device), "prompt_ids": ids.to(device), "prompt_mask": mask.to(device)}

    def pixel_values(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, 6 * I, S, S]`` in the model dtype (I = 1, or 2 with OFT's wrist image)."""
        dtype = next(self.vla.projector.parameters()).dtype
        views = [inputs["images"]] + ([inputs["wrist_images"]] if "wrist_images" in inputs else [])
        return torch.cat([preprocess_images(v, self.image_size, self.cfg.center_crop, dtype) for v in views], dim=1)

    def extra_tokens(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Embeddings inserted after the patches (OFT's proprio token); None for OpenVLA."""
        return None

    def prefix(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vla.embed_prefix(self.pixel_values(inputs), self.prompts.bos_id, inputs["prompt_ids"],
                                     inputs["prompt_mask"], self.extra_tokens(inputs))

    # ---- outputs ---------------------------------------------------------------------------------------
    def scaled_action_logits(self, hidden: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        """hidden ``[B, ..., H]``, temperature ``[B]`` -> fp32 ``[B, ..., n_bins]``."""
        logits = self.vla.action_logits(hidden, self.action_token_ids)
        return logits / temperature.float().view(-1, *([1] * (logits.dim() - 1)))

    def env_actions(self, bins: torch.Tensor) -> torch.Tensor:
        """bins ``[B, C * A]`` -> env-unit actions float32 ``[B, C, A]``."""
        normalized = self.action_tokenizer.bins_to_actions(bins).view(-1, self.num_action_chunks, self.action_dim)
        return unnormalize_actions(normalized, self.stats)

    def demo_forward_inputs(self, obs: Obs, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Demo actions ``[B, C, A]`` in env units -> normalised by the dataset statistics -> the 256-bin
        action tokens ``[B, C * A]`` that ``evaluate`` scores (token cross-entropy for SFT)."""
        inputs = self.inputs_from_obs(obs)
        normalized = normalize_actions(actions.to(self._device()).float(), self.stats)
        bins = self.action_tokenizer.actions_to_bins(normalized).flatten(1)
        batch = bins.shape[0]
        inputs.update(action_tokens=self.action_token_ids[bins], temperature=torch.ones(batch, device=bins.device))
        return inputs

    def set_dataset_statistics(self, raw_stats: dict, unnorm_key: str) -> None:
        """Use (and save with the weights) the q01 / q99 of ``raw_stats[unnorm_key]`` (OpenVLA's format)."""
        self.stats = select_stats(raw_stats, unnorm_key, self.action_dim, "the demonstration dataset")
        self.raw_stats = raw_stats

    def values_from(self, hidden_before_actions: torch.Tensor) -> torch.Tensor | None:
        return self.value_head(hidden_before_actions) if self.value_head is not None else None

    @torch.no_grad()
    def get_values(self, obs: Obs) -> torch.Tensor:
        if self.value_head is None:
            raise RuntimeError("this policy has no value head (set actor.model.add_value_head: true)")
        inputs = self.inputs_from_obs(obs)
        embeds, mask = self.prefix(inputs)
        hidden = self.run_lm(embeds, mask)
        return self.value_head(hidden[:, -1])

    def run_lm(self, embeds: torch.Tensor, mask: torch.Tensor, **kwargs) -> torch.Tensor:
        """Llama decoder stack (final norm included) -> last hidden states ``[B, L, H]``."""
        from rlvla_cli.models.prismatic import positions_from_mask

        out = self.vla.language_model.model(inputs_embeds=embeds, attention_mask=kwargs.pop("attention_mask", mask),
                                            position_ids=positions_from_mask(mask), use_cache=False, **kwargs)
        return out.last_hidden_state

    def value_head_parameters(self) -> list[nn.Parameter]:
        return list(self.value_head.parameters()) if self.value_head is not None else []

    # ---- saving ----------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Full weights: OpenVLA's HF layout (config.json, sharded safetensors + index, dataset_statistics.json,
        tokenizer files; ``value_head.*`` next to the VLA keys). LoRA: the peft adapter of ``vla`` +
        heads.safetensors (value head)."""
        from rlvla_cli.models.checkpoint import save_state_dict, write_json
        from rlvla_cli.models.lora import save_adapter, save_heads
        from rlvla_cli.models.prismatic import hf_config_from_dims

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if self.lora_config is not None:
            save_adapter(self.vla, self.lora_config, out)
            save_heads(self, out)
            return
        state = {k[len("vla."):] if k.startswith("vla.") else k: v for k, v in self.state_dict().items()}
        save_state_dict(state, out)
        config = hf_config_from_dims(self.vla.dims, self.image_size, self.prompts.pad_id, self.cfg.n_action_bins,
                                     self.raw_stats)
        write_json(out / "config.json", config)
        if self.raw_stats:
            write_json(out / "dataset_statistics.json", self.raw_stats)
        self.tokenizer.save_pretrained(str(out))


def check_image_size(image_size: int, patch: int) -> None:
    if image_size % patch:
        raise ConfigError(f"image_size {image_size} is not a multiple of the ViT patch size {patch}",
                          key="actor.model.image_size", fix=f"use a multiple of {patch}, e.g. {patch * 16}")

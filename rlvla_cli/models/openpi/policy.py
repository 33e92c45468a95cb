"""``OpenPIPolicy``: pi0 / pi0.5 as an RL policy (``VLAPolicy``) with flow-SDE or flow-noise sampling.

predict: observation -> prompt tokens (pi0.5: with the discretised state) + images -> prefix KV cache once ->
K denoising steps recorded as a chain -> actions (first C of H, first A of D dims, un-normalised) and the
log-probs of the stochastic transitions. evaluate: the same prefix, then only the scored steps of the stored
chain (``flow_sampler.score_chain``), so the recomputed log-probs equal the rollout's.

forward_inputs (batch first): ``main_images`` uint8 ``[B, h, w, 3]``, ``wrist_images`` (2 cameras),
``state`` float32 ``[B, D]`` (normalised, padded), ``tokens`` int64 / ``token_mask`` bool ``[B, L]``,
``chains`` float32 ``[B, K + 1, H, D]``, ``denoise_inds`` int64 ``[B, S]`` (-1: greedy, nothing scored).

Values: after the VLM (mean of the valid prefix outputs) or after the expert (mean over the H action tokens,
averaged over the scored steps; over all steps when greedy). Temperature does not apply to flow sampling.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.errors import ConfigError, UserError
from rlvla_cli.models.base import EvaluateOutput, Mode, Obs, PolicyOutput, SamplingParams, VLAPolicy
from rlvla_cli.models.openpi.flow_matching import chain_reduce, flow_timesteps
from rlvla_cli.models.openpi.flow_sampler import (
    FlowSettings,
    StepPrediction,
    choose_denoise_inds,
    sample_chain,
    score_chain,
)
from rlvla_cli.models.openpi.gemma_joint import PrefixCache
from rlvla_cli.models.openpi.norm_stats import OpenPINormStats, normalize, unnormalize
from rlvla_cli.models.openpi.pi0 import OpenPIFlowModel
from rlvla_cli.models.openpi.presets import get_preset, with_image_size
from rlvla_cli.models.openpi.saving import save_openpi_policy
from rlvla_cli.models.openpi.state_tokens import PromptTokenizer, discretize_state
from rlvla_cli.models.value_head import ValueHead


class NoiseHead(nn.Module):
    """flow_noise's learned std: tanh MLP on the expert output ``[B, H, W_e]`` -> raw ``[B, H, D]``."""

    def __init__(self, in_dim: int, hidden_dims: list[int], out_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden_dims:
            layers += [nn.Linear(in_dim, width), nn.Tanh()]
            in_dim = width
        layers.append(nn.Linear(in_dim, out_dim))
        self.mlp = nn.Sequential(*layers)
        nn.init.zeros_(self.mlp[-1].weight)  # start at the middle of the std range
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features.to(self.mlp[0].weight.dtype)).float()


def images_to_pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[B, h, w, 3]`` -> float ``[B, 3, size, size]`` in [-1, 1]; non-square images are padded black first
    (openpi's resize-with-pad)."""
    x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    h, w = x.shape[-2:]
    if h != w:
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        x = F.pad(x, (left, side - w - left, top, side - h - top), value=-1.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


class OpenPIPolicy(VLAPolicy):
    """pi0 / pi0.5 policy; the openpi network is ``self.flow`` (see ``checkpoint.py`` for the key mapping)."""

    def __init__(self, cfg: OpenPIModelConfig, tokenizer: PromptTokenizer, norm_stats: OpenPINormStats,
                 vocab_size: int | None = None):
        """vocab_size: token-embedding rows when they differ from the preset's (a checkpoint's own table)."""
        super().__init__()
        dims = with_image_size(get_preset(cfg.size), cfg.image_size)
        if vocab_size is not None:
            dims = dataclasses.replace(dims, vocab_size=vocab_size)
        if tokenizer.vocab_size > dims.vocab_size:
            raise ConfigError(
                f"the tokenizer has {tokenizer.vocab_size} ids but the `{cfg.size}` preset's vocabulary has "
                f"{dims.vocab_size}",
                key="actor.model.size",
                fix="use size small/full with PaliGemma's tokenizer, or the built-in tokenizer with tiny",
            )
        self.cfg, self.dims, self.tokenizer, self.norm_stats = cfg, dims, tokenizer, norm_stats
        self.action_dim, self.num_action_chunks = cfg.action_dim, cfg.num_action_chunks
        self.flow = OpenPIFlowModel(dims, cfg.pi05, cfg.action_horizon, cfg.model_action_dim)
        lo, hi = cfg.noise_logvar_range
        self.settings = FlowSettings(
            cfg.resolved_num_steps, cfg.noise_method, cfg.noise_level, lo, hi, bool(cfg.joint_logprob)
        )
        width = dims.expert.width
        self.noise_head = (
            NoiseHead(width, cfg.noise_head_hidden_dims, cfg.model_action_dim)
            if cfg.noise_method == "flow_noise"
            else None
        )
        value_in = dims.vlm.width if cfg.value_after_vlm else width
        self.value_head = ValueHead(value_in, 1, cfg.value_head_hidden_dim) if cfg.add_value_head else None
        self.lora_config = None  # set by the builder when cfg.is_lora

    @property
    def device(self) -> torch.device:
        return self.flow.action_in_proj.weight.device

    # ---- inputs --------------------------------------------------------------------------------------
    def _obs_inputs(self, obs: Obs) -> dict[str, torch.Tensor]:
        """Env observation -> the model-ready tensors stored in forward_inputs (see module docstring)."""
        cfg, device = self.cfg, self.device
        states = obs.get("states")
        if states is None:
            raise UserError("pi0 / pi0.5 need `states` [B, S] in the observation", key="env")
        states = states.to(device=device, dtype=torch.float32)
        if states.shape[-1] > cfg.model_action_dim:
            raise UserError(
                f"state size {states.shape[-1]} exceeds model_action_dim {cfg.model_action_dim}",
                key="actor.model.model_action_dim",
            )
        normed = normalize(states, self.norm_stats.state, bool(cfg.use_quantile_norm), "state")
        bins = discretize_state(normed.cpu()) if cfg.discrete_state_input else None
        tokens, mask = self.tokenizer.tokenize_batch(list(obs["task_descriptions"]), bins, int(cfg.max_token_len))
        inputs = {
            "main_images": obs["main_images"].to(device),
            "state": F.pad(normed, (0, cfg.model_action_dim - normed.shape[-1])),
            "tokens": tokens.to(device),
            "token_mask": mask.to(device),
        }
        if cfg.num_images == 2:
            if obs.get("wrist_images") is None:
                raise UserError("num_images is 2 but the env gives no `wrist_images`", key="actor.model.num_images",
                                fix="set actor.model.num_images: 1 for envs without a wrist camera")
            inputs["wrist_images"] = obs["wrist_images"].to(device)
        return inputs

    def _prefix(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, PrefixCache]:
        """-> (prefix output ``[B, Lp, W_v]``, pad mask ``[B, Lp]``, KV cache). No graph when the VLM is frozen."""
        size = self.dims.vision.image_size
        names = ["main_images"] + (["wrist_images"] if self.cfg.num_images == 2 else [])
        pixels = [images_to_pixels(inputs[name], size) for name in names]
        masks = [torch.ones(p.shape[0], dtype=torch.bool, device=p.device) for p in pixels]
        vlm_trains = any(p.requires_grad for p in self.flow.paligemma_with_expert.paligemma.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and vlm_trains):
            prefix, pad = self.flow.embed_prefix(pixels, masks, inputs["tokens"], inputs["token_mask"])
            out, cache = self.flow.encode_prefix(prefix, pad)
        return out, pad, cache

    def _step_fn(self, cache: PrefixCache, state: torch.Tensor):
        grid = flow_timesteps(self.settings.num_steps, device=state.device)
        wants_feature = self.value_head is not None and not self.cfg.value_after_vlm

        def step(x_t: torch.Tensor, index: torch.Tensor) -> StepPrediction:
            velocity, out = self.flow.velocity(cache, state, x_t, grid[index])
            noise_raw = self.noise_head(out) if self.noise_head is not None else None
            feature = out.float().mean(1) if wants_feature else None
            return StepPrediction(velocity, noise_raw, feature)

        return step

    # ---- outputs -------------------------------------------------------------------------------------
    def _per_action(self, per_step: torch.Tensor) -> torch.Tensor:
        """``[B, S, H, D]`` -> ``[B, C, A]``: executed chunk, env dims, combined over the scored columns."""
        sliced = per_step[:, :, : self.num_action_chunks, : self.action_dim].float()
        return chain_reduce(sliced, self.cfg.joint_logprob_reduction, dim=1)

    def _values(self, prefix_out, pad, feature) -> torch.Tensor | None:
        if self.value_head is None:
            return None
        if self.cfg.value_after_vlm:
            weights = pad.to(prefix_out.dtype)[..., None]
            pooled = (prefix_out * weights).sum(1) / weights.sum(1).clamp(min=1)
            return self.value_head(pooled.float())
        if self.cfg.detach_critic_input:  # RLinf's _compute_value_from_suffix: the value loss leaves the expert alone
            feature = feature.detach()
        return self.value_head(feature)

    @torch.no_grad()
    def predict(self, obs: Obs, mode: Mode = "train", sampling: SamplingParams | None = None) -> PolicyOutput:
        sampling = sampling or SamplingParams.for_mode(None, mode)
        inputs = self._obs_inputs(obs)
        prefix_out, pad, cache = self._prefix(inputs)
        batch = pad.shape[0]
        noise = torch.randn(batch, self.cfg.action_horizon, self.cfg.model_action_dim, device=self.device)
        inds = choose_denoise_inds(batch, self.settings, greedy=not sampling.do_sample).to(self.device)
        result = sample_chain(self.settings, self._step_fn(cache, inputs["state"]), noise, inds)
        normed = result.chain[:, -1, : self.num_action_chunks, : self.action_dim]
        actions = unnormalize(normed, self.norm_stats.actions, bool(self.cfg.use_quantile_norm), "actions")
        inputs.update(chains=result.chain, denoise_inds=inds)
        return PolicyOutput(
            actions=actions.float(),
            logprobs=self._per_action(result.logprobs),
            values=self._values(prefix_out, pad, result.value_feature),
            forward_inputs=inputs,
        )

    def evaluate(
        self, forward_inputs: dict[str, torch.Tensor], compute_entropy: bool = True, compute_values: bool = True
    ) -> EvaluateOutput:
        prefix_out, pad, cache = self._prefix(forward_inputs)
        step = self._step_fn(cache, forward_inputs["state"])
        result = score_chain(self.settings, step, forward_inputs["chains"], forward_inputs["denoise_inds"])
        return EvaluateOutput(
            logprobs=self._per_action(result.logprobs),
            entropy=self._per_action(result.entropy) if compute_entropy else None,
            values=self._values(prefix_out, pad, result.value_feature) if compute_values else None,
        )

    def flow_matching_loss(self, obs: Obs, actions: torch.Tensor) -> torch.Tensor:
        """Behaviour-cloning loss (openpi's training objective) for ``actions`` float32 ``[B, H', A]`` in env units,
        H' <= action_horizon: normalised, padded to ``[B, H, D]``; the MSE of the velocity is averaged over the
        given steps and env dims only. Returns a scalar with gradients to every trainable parameter."""
        inputs = self._obs_inputs(obs)
        batch, steps, dims = actions.shape
        if steps > self.cfg.action_horizon or dims != self.action_dim:
            raise ValueError(f"actions {tuple(actions.shape)} must be [B, <= {self.cfg.action_horizon}, "
                             f"{self.action_dim}]")
        normed = normalize(actions.to(self.device).float(), self.norm_stats.actions,
                           bool(self.cfg.use_quantile_norm), "actions")
        target = torch.zeros(batch, self.cfg.action_horizon, self.cfg.model_action_dim, device=self.device)
        target[:, :steps, :dims] = normed
        size = self.dims.vision.image_size
        names = ["main_images"] + (["wrist_images"] if self.cfg.num_images == 2 else [])
        pixels = [images_to_pixels(inputs[name], size) for name in names]
        masks = [torch.ones(batch, dtype=torch.bool, device=self.device)] * len(pixels)
        prefix, pad = self.flow.embed_prefix(pixels, masks, inputs["tokens"], inputs["token_mask"])
        loss = self.flow.flow_matching_loss(prefix, pad, inputs["state"], target)
        return loss[:, :steps, :dims].mean()

    def supervised_loss(self, obs: Obs, actions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Behaviour cloning for pi0 / pi0.5 is openpi's flow-matching objective on the demo chunk ``[B, C, A]``
        (``mask`` is ignored: chunks are padded with the episode's last action, as openpi pads)."""
        return self.flow_matching_loss(obs, actions)

    def set_dataset_statistics(self, raw_stats: dict, unnorm_key: str) -> None:
        """Normalise states and actions with a demonstration dataset's statistics (rlvla / OpenVLA format:
        ``raw_stats[unnorm_key]`` with ``action`` and ``proprio`` mean / std / q01 / q99); saved with the weights."""
        from rlvla_cli.models.openpi.norm_stats import FeatureStats, OpenPINormStats

        entry = raw_stats[unnorm_key]
        self.norm_stats = OpenPINormStats(
            FeatureStats.from_json(entry["proprio"], f"{unnorm_key} proprio"),
            FeatureStats.from_json(entry["action"], f"{unnorm_key} action"),
        )

    @torch.no_grad()
    def get_values(self, obs: Obs) -> torch.Tensor:
        if self.value_head is None:
            raise RuntimeError("this policy has no value head (set actor.model.add_value_head: true)")
        if self.cfg.value_after_vlm:
            prefix_out, pad, _ = self._prefix(self._obs_inputs(obs))
            return self._values(prefix_out, pad, None)
        return self.predict(obs, mode="train").values

    def value_head_parameters(self) -> list[nn.Parameter]:
        return list(self.value_head.parameters()) if self.value_head is not None else []

    def save_pretrained(self, directory: str | Path) -> None:
        """openpi layout (model.safetensors) + heads.safetensors + config.json + norm_stats.json (+ tokenizer.json);
        with LoRA the peft adapter of the VLM + heads.safetensors (expert, projections, heads) instead."""
        save_openpi_policy(self, directory)

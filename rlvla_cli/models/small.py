"""The small policy: FiLM-conditioned CNN + spatial-softmax keypoints + hashed-word instruction encoder +
proprio -> Gaussian action head (learnable log-std) and a value head. Built for the built-in task and tests:
it learns "reach the object the instruction names" on 64x64 images within minutes on a CPU. With
``use_image: false`` there is no image encoder: instruction + ``states`` only (state-observation tasks).

Shapes: B batch, C ``num_action_chunks``, A ``action_dim``, V values (1 or C).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlvla_cli.config.model import SmallModelConfig
from rlvla_cli.errors import UserError
from rlvla_cli.models.base import (
    PRECISION_DTYPES,
    EvaluateOutput,
    Mode,
    Obs,
    PolicyOutput,
    SamplingParams,
    VLAPolicy,
)
from rlvla_cli.models.presets import small_dims
from rlvla_cli.models.registry import register_policy
from rlvla_cli.models.text_encoder import HashWordTokenizer, InstructionEncoder
from rlvla_cli.models.value_head import ValueHead

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_logprob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(log_std)^2); broadcasting shapes."""
    return -0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - _LOG_SQRT_2PI


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Elementwise entropy of N(., exp(log_std)^2): 0.5 + log(sqrt(2 pi)) + log_std."""
    return 0.5 + _LOG_SQRT_2PI + log_std


def squash(raw: torch.Tensor, kind: str) -> torch.Tensor:
    """Map a Gaussian sample to [-1, 1]: ``clip`` or ``tanh``."""
    return torch.tanh(raw) if kind == "tanh" else raw.clamp(-1.0, 1.0)


def squash_log_det(raw: torch.Tensor, kind: str) -> torch.Tensor:
    """log |d squash / d raw| per element (0 for ``clip``: its log-prob is the pre-clip Gaussian's)."""
    if kind != "tanh":
        return torch.zeros_like(raw)
    return 2.0 * (math.log(2.0) - raw - F.softplus(-2.0 * raw))


class SpatialSoftmax(nn.Module):
    """Feature maps ``[B, K, H, W]`` -> expected (x, y) per channel ``[B, 2K]`` (Levine et al. 2016), with a
    learnable inverse temperature; starting at e^2 makes the maps peaked early, which roughly halved the steps
    to bind instruction colour and object location in our runs."""

    def __init__(self, init_log_scale: float = 2.0):
        super().__init__()
        # shape [1], not a 0-d tensor: ZeRO-1/2 flatten parameters into buffers and mishandle 0-d views
        self.log_scale = nn.Parameter(torch.tensor([init_log_scale]))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b, k, h, w = maps.shape
        attn = torch.softmax(maps.flatten(2) * self.log_scale.exp(), dim=-1).view(b, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=maps.device, dtype=maps.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=maps.device, dtype=maps.dtype)
        ex = (attn.sum(2) * xs).sum(-1)
        ey = (attn.sum(3) * ys).sum(-1)
        return torch.cat([ex, ey], dim=-1)


class FiLMImageEncoder(nn.Module):
    """uint8 images + instruction feature -> keypoints. Two strided convs over RGB + (x, y) coordinate
    channels, FiLM (per-channel scale / shift from the instruction) so channels can pick the named colour,
    a 1x1 conv, then spatial softmax."""

    def __init__(self, channels: tuple[int, int], text_dim: int, image_size: int):
        super().__init__()
        c1, c2 = channels
        self.image_size = image_size
        self.conv1 = nn.Conv2d(5, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.film = nn.Linear(text_dim, 2 * c2)
        self.conv3 = nn.Conv2d(c2, c2, 1)
        self.keypoints = SpatialSoftmax()
        self.out_dim = 2 * c2
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, image_size), torch.linspace(-1, 1, image_size), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys]).unsqueeze(0), persistent=False)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """images uint8 ``[B, H, W, 3]``, text ``[B, text_dim]`` -> keypoints ``[B, 2 * c2]``."""
        x = images.permute(0, 3, 1, 2).to(self.coords.dtype) / 255.0
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="area")
        x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        x = F.relu(self.conv1(x))
        x = self.conv2(x)
        gamma, beta = self.film(text).chunk(2, dim=-1)
        x = F.relu(x * (1.0 + gamma[..., None, None]) + beta[..., None, None])
        return self.keypoints(self.conv3(x))


class SmallPolicy(VLAPolicy):
    """See the module docstring. ``forward_inputs``: images uint8 ``[B, H, W, 3]`` (absent without
    ``use_image``), word_ids int64 ``[B, W]``, states ``[B, S]``, raw_actions ``[B, C, A]`` (pre-squash Gaussian
    sample), temperature ``[B]``."""

    def __init__(self, cfg: SmallModelConfig):
        super().__init__()
        self.cfg = cfg
        self.action_dim, self.num_action_chunks = cfg.action_dim, cfg.num_action_chunks
        dims = small_dims(cfg.size)
        self.tokenizer = HashWordTokenizer(cfg.text_vocab_size, cfg.max_words)
        self.text = InstructionEncoder(cfg.text_vocab_size, dims.text_dim, cfg.text_encoder)
        self.image = FiLMImageEncoder(dims.channels, dims.text_dim, cfg.image_size) if cfg.use_image else None
        image_dim = self.image.out_dim if self.image is not None else 0
        feat_dim = image_dim + dims.text_dim + cfg.state_dim
        out = cfg.num_action_chunks * cfg.action_dim
        self.trunk = nn.Sequential(nn.Linear(feat_dim, dims.hidden_dim), nn.GELU())
        hidden = dims.hidden_dim
        self.actor = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, out))
        nn.init.uniform_(self.actor[-1].weight, -1e-3, 1e-3)
        nn.init.zeros_(self.actor[-1].bias)
        self.log_std = nn.Parameter(torch.full((out,), float(cfg.init_log_std)))
        self.value_head = ValueHead(hidden, cfg.num_values, dims.value_hidden_dim) if cfg.add_value_head else None
        self.lora_config = None  # set by the builder when cfg.is_lora

    # ---- features ------------------------------------------------------------------------------------
    def _inputs_from_obs(self, obs: Obs) -> dict[str, torch.Tensor]:
        device = self.log_std.device
        batch = len(obs["task_descriptions"])
        states = obs.get("states")
        if self.cfg.state_dim > 0:
            if states is None or states.shape[-1] != self.cfg.state_dim:
                got = None if states is None else tuple(states.shape)
                raise UserError(
                    f"the small policy expects `states` [B, {self.cfg.state_dim}] but got {got}",
                    key="actor.model.state_dim",
                    fix="set actor.model.state_dim to the env's state size (0 to ignore states)",
                )
            states = states.to(device=device, dtype=torch.float32)
        else:
            states = torch.zeros(batch, 0, device=device)
        inputs = {"word_ids": self.tokenizer(list(obs["task_descriptions"])).to(device), "states": states}
        if self.image is not None:
            images = obs.get("main_images")
            if images is None or images.shape[1:3].numel() == 0:
                raise UserError(
                    "the small policy encodes `main_images` but the env gives none (e.g. ManiSkill obs_mode state)",
                    key="actor.model.use_image", fix="set actor.model.use_image: false (and state_dim), or use rgb obs",
                )
            inputs["images"] = images.to(device)
        return inputs

    def _features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """-> trunk features ``[B, hidden_dim]``."""
        text = self.text(inputs["word_ids"])
        parts = [text] if self.image is None else [self.image(inputs["images"], text), text]
        return self.trunk(torch.cat([*parts, inputs["states"].to(text.dtype)], dim=-1))

    def _dist(self, features: torch.Tensor, temperature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> mean ``[B, C, A]``, log_std ``[B, C, A]`` (temperature ``[B]`` scales the std)."""
        shape = (features.shape[0], self.num_action_chunks, self.action_dim)
        # Under the trainer's bf16 autocast the mean is a bf16 matmul, as in the bf16 rollout copy the config rules
        # then require: the rollout's log-probs and the trainer's must come from the same arithmetic.
        mean = self.actor(features).view(shape).float()
        low, high = self.cfg.log_std_range
        log_std = self.log_std.float().clamp(low, high).view(1, *shape[1:])
        log_std = log_std + torch.log(temperature.float()).view(-1, 1, 1)
        return mean, log_std

    def _logprob(self, raw: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        return gaussian_logprob(raw, mean, log_std) - squash_log_det(raw, self.cfg.action_squash)

    # ---- VLAPolicy -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: Obs, mode: Mode = "train", sampling: SamplingParams | None = None) -> PolicyOutput:
        sampling = sampling or SamplingParams.for_mode(None, mode)
        inputs = self._inputs_from_obs(obs)
        features = self._features(inputs)
        batch = features.shape[0]
        temperature = torch.full((batch,), float(sampling.temperature), device=features.device)
        mean, log_std = self._dist(features, temperature)
        raw = mean + torch.randn_like(mean) * log_std.exp() if sampling.do_sample else mean
        values = self.value_head(features) if self.value_head is not None else None
        inputs.update(raw_actions=raw, temperature=temperature)
        return PolicyOutput(
            actions=squash(raw, self.cfg.action_squash) * self.cfg.action_scale,
            logprobs=self._logprob(raw, mean, log_std),
            values=values,
            forward_inputs=inputs,
        )

    def evaluate(
        self, forward_inputs: dict[str, torch.Tensor], compute_entropy: bool = True, compute_values: bool = True
    ) -> EvaluateOutput:
        features = self._features(forward_inputs)
        mean, log_std = self._dist(features, forward_inputs["temperature"])
        raw = forward_inputs["raw_actions"].float()
        entropy = gaussian_entropy(log_std).expand_as(mean) if compute_entropy else None
        values = self.value_head(features) if (compute_values and self.value_head is not None) else None
        return EvaluateOutput(logprobs=self._logprob(raw, mean, log_std), entropy=entropy, values=values)

    def demo_forward_inputs(self, obs: Obs, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Demo actions ``[B, C, A]`` -> the pre-squash Gaussian sample that produces them (inverse of
        ``squash(raw) * action_scale``; tanh is inverted inside (-1, 1) so the NLL stays finite)."""
        inputs = self._inputs_from_obs(obs)
        unit = (actions.to(self.log_std.device).float() / self.cfg.action_scale).clamp(-1.0, 1.0)
        raw = torch.atanh(unit.clamp(-0.995, 0.995)) if self.cfg.action_squash == "tanh" else unit
        inputs.update(raw_actions=raw, temperature=torch.ones(raw.shape[0], device=raw.device))
        return inputs

    @torch.no_grad()
    def get_values(self, obs: Obs) -> torch.Tensor:
        if self.value_head is None:
            raise RuntimeError("this policy has no value head (set actor.model.add_value_head: true)")
        return self.value_head(self._features(self._inputs_from_obs(obs)))

    def value_head_parameters(self) -> list[nn.Parameter]:
        return list(self.value_head.parameters()) if self.value_head is not None else []

    def save_pretrained(self, directory: str | Path) -> None:
        """``model.safetensors`` (full state dict) + ``config.json`` (the model config); with LoRA the peft
        adapter + ``heads.safetensors`` (value head, log-std) instead."""
        from rlvla_cli.models.checkpoint import save_policy_safetensors
        from rlvla_cli.models.lora import save_adapter, save_heads

        if self.lora_config is not None:
            save_adapter(self, self.lora_config, directory)
            save_heads(self, directory)
        else:
            save_policy_safetensors(self, directory, self.cfg)


SMALL_LORA_TARGETS = ["trunk.0", "actor.0", "actor.2"]


@register_policy("small")
def build_small_policy(cfg: SmallModelConfig, device: str) -> SmallPolicy:
    """Registry builder: random init of the preset, ``model_path`` weights when set, optional LoRA."""
    from rlvla_cli.models.checkpoint import load_policy_safetensors
    from rlvla_cli.models.lora import inject_lora, load_adapter, load_heads, lora_config_for

    policy = SmallPolicy(cfg)
    if cfg.model_path and device != "meta":
        load_policy_safetensors(policy, cfg.model_path)
    if cfg.is_lora:
        policy.lora_config = lora_config_for(cfg, SMALL_LORA_TARGETS, cfg.model_path)
        inject_lora(policy, policy.lora_config)
        for p in [policy.log_std, *policy.value_head_parameters()]:  # heads always train
            p.requires_grad = True
        if cfg.lora_path and device != "meta":
            load_adapter(policy, cfg.lora_path)
            load_heads(policy, cfg.lora_path)
    dtype = PRECISION_DTYPES[cfg.precision]
    policy.to(device=device, dtype=dtype)
    if policy.value_head is not None:
        policy.value_head.float()
    return policy

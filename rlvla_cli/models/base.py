"""The policy contract every VLA implements (OpenVLA, OpenVLA-OFT, pi0 / pi0.5, small).

Shapes: B batch, C action chunks per prediction (``num_action_chunks``), A action dims (``action_dim``),
V value outputs per observation (1 for a chunk-level value, C for an action-level one).
Log-probs and entropies are always returned per action dimension (token level), ``[B, C, A]``;
``rlvla_cli.algorithms`` aggregates them to the configured ``logprob_type`` / ``entropy_type``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

# config `precision` -> torch dtype (model builds and the runtime's rollout copies)
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

Obs = dict[str, Any]
Mode = Literal["train", "eval"]


@dataclass(frozen=True)
class SamplingParams:
    """How ``predict`` draws actions (the runtime builds it from ``rollout.sampling``).

    do_sample: sample (True) or take the most likely action (False).
    temperature: divides the action-token logits (token models) or multiplies the Gaussian std (small policy).
    top_k / top_p: restrict sampling to the k most likely action tokens / the nucleus of mass top_p (0 / 1.0:
    off). They only shape sampling; the returned log-probs, like ``evaluate``'s, use the full temperature-scaled
    distribution, so rollout and recompute agree exactly.
    """

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    @classmethod
    def for_mode(cls, sampling_cfg: Any | None, mode: Mode) -> SamplingParams:
        """From a ``rollout.sampling`` config (``SamplingConfig``) and the mode; ``eval`` without sampling
        config is greedy. Uses ``temperature_train`` in ``train`` and ``temperature_eval`` in ``eval``."""
        if sampling_cfg is None:
            return cls(do_sample=(mode == "train"))
        temperature = sampling_cfg.temperature_train if mode == "train" else sampling_cfg.temperature_eval
        return cls(
            do_sample=bool(sampling_cfg.do_sample),
            temperature=float(temperature),
            top_k=int(sampling_cfg.top_k),
            top_p=float(sampling_cfg.top_p),
        )


@dataclass
class PolicyOutput:
    """Result of ``predict``.

    actions: float32 ``[B, C, A]`` in env units (un-normalised).
    logprobs: float32 ``[B, C, A]`` of the sampled actions (token level).
    values: float32 ``[B, V]`` or None when the policy has no value head.
    forward_inputs: batch-first tensors ``{name: [B, ...]}``: everything ``evaluate`` needs to recompute
    the log-probs of these exact actions (action tokens, or the flow chain and its noise indices).
    """

    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor | None
    forward_inputs: dict[str, torch.Tensor]


@dataclass
class EvaluateOutput:
    """Result of ``evaluate``: logprobs ``[B, C, A]``, entropy ``[B, C, A]`` or None, values ``[B, V]`` or None."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    values: torch.Tensor | None


class VLAPolicy(nn.Module, ABC):
    """A VLA policy with an optional value head."""

    action_dim: int
    num_action_chunks: int

    @abstractmethod
    @torch.no_grad()
    def predict(self, obs: Obs, mode: Mode = "train", sampling: SamplingParams | None = None) -> PolicyOutput:
        """Actions for a batch of observations.

        ``sampling`` None means ``SamplingParams.for_mode(None, mode)``: sample at temperature 1 in ``train``,
        greedy in ``eval``. The temperature used is stored in ``forward_inputs["temperature"]`` ``[B]`` so
        ``evaluate`` scores the same distribution.
        """

    @abstractmethod
    def evaluate(
        self, forward_inputs: dict[str, torch.Tensor], compute_entropy: bool = True, compute_values: bool = True
    ) -> EvaluateOutput:
        """Recompute log-probs (with grad) of the actions stored in ``forward_inputs``."""

    @abstractmethod
    @torch.no_grad()
    def get_values(self, obs: Obs) -> torch.Tensor:
        """Values ``[B, V]`` of observations (truncation bootstrap from final observations)."""

    def demo_forward_inputs(self, obs: Obs, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode demonstration ``actions`` float32 ``[B, C, A]`` (env units) as the ``forward_inputs`` whose
        log-likelihood ``evaluate`` scores: action tokens for OpenVLA / OFT, pre-squash samples for the small
        policy. Policies trained with another objective (flow matching) override ``supervised_loss`` instead."""
        raise NotImplementedError(f"{type(self).__name__} does not support behaviour cloning")

    def supervised_loss(self, obs: Obs, actions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Behaviour-cloning loss: the negative log-likelihood of demonstration ``actions`` ``[B, C, A]``,
        averaged over the entries where ``mask`` bool ``[B, C]`` is set (token cross-entropy on the action bins
        for OpenVLA / OFT, Gaussian NLL for the small policy). Scalar with gradients."""
        scored = self.evaluate(self.demo_forward_inputs(obs, actions), compute_entropy=False, compute_values=False)
        nll = -scored.logprobs.float()
        if mask is None:
            return nll.mean()
        weights = mask.to(nll.device, nll.dtype).unsqueeze(-1).expand_as(nll)
        return (nll * weights).sum() / weights.sum().clamp(min=1.0)

    def value_head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained with ``actor.optim.value_lr`` (empty without a value head)."""
        return []

    def policy_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters other than the value head (LoRA adapters, expert, ...)."""
        value_ids = {id(p) for p in self.value_head_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in value_ids]

    def sync_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors a rollout copy needs after a training step: every trainable parameter (with LoRA: the
        adapters and the value head; frozen weights never change, so they are not sent). Detached, not cloned:
        the caller copies or broadcasts them."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def load_sync_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy tensors from ``sync_state_dict()`` of an identically built policy into this one (in place, so
        shared / pinned storage stays valid). Unknown names or shape mismatches raise ``KeyError`` / ``ValueError``."""
        params = dict(self.named_parameters())
        unknown = [k for k in state if k not in params]
        if unknown:
            raise KeyError(f"sync state has {len(unknown)} names this policy lacks, e.g. {unknown[:3]}")
        for name, tensor in state.items():
            target = params[name]
            if target.shape != tensor.shape:
                raise ValueError(f"sync tensor {name}: shape {tuple(tensor.shape)} != {tuple(target.shape)}")
            target.copy_(tensor.to(device=target.device, dtype=target.dtype))

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the weights in Hugging Face layout (config.json + safetensors); with LoRA, the peft adapter
        (adapter_config.json + adapter_model.safetensors) and the value head instead of the full backbone.
        ``rlvla_cli.models.registry.load_policy(model_cfg, directory)`` reads it back.

        This default writes the whole state dict to ``model.safetensors``; architectures override it.
        """
        from safetensors.torch import save_model

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_model(self, str(out / "model.safetensors"))

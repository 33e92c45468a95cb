"""``actor.model``: a discriminated union on ``model_type`` (small / openvla / openvla_oft / openpi).

Sampling settings (temperature, top-k, do_sample) live in ``rollout.sampling``, not here: the runtime passes
them to ``VLAPolicy.predict`` as a ``SamplingParams``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rlvla_cli.config.model_base import ModelConfigBase, Precision, Size, ValueType
from rlvla_cli.config.model_openpi import OpenPIModelConfig

__all__ = [
    "ModelConfig",
    "ModelConfigBase",
    "OpenPIModelConfig",
    "OpenVLAModelConfig",
    "OpenVLAOFTModelConfig",
    "Precision",
    "Size",
    "SmallModelConfig",
    "ValueType",
]


class SmallModelConfig(ModelConfigBase):
    """A small CNN + bag-of-words policy with a Gaussian action head (built-in task, tests, CPU runs)."""

    model_type: Literal["small"] = Field("small", description="Architecture discriminator.")
    size: Size = Field("small", description="Size preset: tiny | mini | small | full (widths of the CNN and MLPs).")
    precision: Precision = Field("fp32", description="Parameter / compute dtype (fp32 recommended on the CPU).")
    image_size: int = Field(64, ge=8, description="Square input image size the encoder resizes to.")
    use_image: bool = Field(
        True,
        description="Encode `main_images`; false builds no image encoder and acts on the instruction and "
        "`states` only (for state observations, e.g. ManiSkill obs_mode: state; then set state_dim).",
    )
    state_dim: int = Field(
        3, ge=0, description="Proprioception size S of `states` [B, S] (3 for the built-in task); 0 ignores states."
    )
    text_vocab_size: int = Field(
        1024, ge=16, description="Hash buckets of the word-level instruction tokenizer (no downloads)."
    )
    text_encoder: Literal["mean", "gru"] = Field(
        "mean", description="Instruction encoder over word embeddings: mean pooling or a one-layer GRU."
    )
    max_words: int = Field(16, ge=1, description="Instruction words kept (longer ones are truncated).")
    action_squash: Literal["tanh", "clip"] = Field(
        "clip",
        description="How the Gaussian sample maps to [-1, 1]: `clip` keeps the exact Gaussian log-prob of "
        "the pre-clip sample; `tanh` applies the tanh change of variables.",
    )
    action_scale: float = Field(1.0, gt=0, description="Env action = squashed action in [-1, 1] x action_scale.")
    init_log_std: float = Field(-0.5, description="Initial learnable log standard deviation of the action head.")
    log_std_range: tuple[float, float] = Field(
        (-5.0, 1.0), description="Clamp range of the log standard deviation [min, max]."
    )

    @model_validator(mode="after")
    def _check_log_std(self) -> SmallModelConfig:
        low, high = self.log_std_range
        if low >= high:
            raise ValueError(f"`log_std_range` must be [min, max] with min < max, got {list(self.log_std_range)}")
        return self

    @model_validator(mode="after")
    def _check_inputs(self) -> SmallModelConfig:
        if not self.use_image and self.state_dim == 0:
            raise ValueError("with `use_image: false` the policy sees only `states`: set `state_dim` > 0")
        return self


class _OpenVLAKeys(ModelConfigBase):
    """Keys OpenVLA and OpenVLA-OFT share."""

    unnorm_key: str | None = Field(
        None,
        description="Dataset whose q01/q99 statistics un-normalise actions (e.g. `bridge_orig`); None is fine "
        "when the checkpoint has exactly one dataset.",
    )
    dataset_statistics_path: str | None = Field(
        None, description="dataset_statistics.json to use instead of the one in `model_path` / config.json."
    )
    n_action_bins: int = Field(256, ge=2, description="Action bins per dimension (uniform over [-1, 1]).")
    vocab_size: int | None = Field(
        None, description="Language-model vocabulary size; None takes it from the size preset or checkpoint."
    )
    center_crop: bool = Field(
        False, description="Crop the central 90% of the image area before resizing (for crop-augmented models)."
    )
    max_prompt_length: int = Field(
        64, ge=8, description="Prompt token budget; prompts are left-padded to the longest in the batch."
    )
    attn_implementation: Literal["eager", "sdpa"] = Field(
        "sdpa", description="Attention kernel of the language model (transformers' attn_implementation)."
    )


class OpenVLAModelConfig(_OpenVLAKeys):
    """OpenVLA (Kim et al. 2024): DINOv2 + SigLIP -> projector -> Llama-2, 7 autoregressive action tokens."""

    model_type: Literal["openvla"] = Field("openvla", description="Architecture discriminator.")


class OpenVLAOFTModelConfig(_OpenVLAKeys):
    """OpenVLA-OFT (Kim et al. 2025): all action_dim x num_action_chunks tokens decoded in one parallel pass."""

    model_type: Literal["openvla_oft"] = Field("openvla_oft", description="Architecture discriminator.")
    num_action_chunks: int = Field(8, ge=1, description="Actions predicted per policy call (the chunk C).")
    use_proprio: bool = Field(
        False, description="Project `states` into one extra token after the image tokens (OFT's proprio projector)."
    )
    state_dim: int = Field(8, ge=1, description="Proprioception size S used by the proprio projector.")
    use_wrist_image: bool = Field(
        False, description="Also encode `wrist_images` (their patch tokens follow the main image's)."
    )
    implement_version: Literal["rlinf", "official"] = Field(
        "rlinf",
        description="The OFT input layout the checkpoint was trained with (RLinf's key): `rlinf` (RLinf's released "
        "LIBERO / ManiSkill OFT models: prompt then C x A empty action slots) or `official` (moojink/openvla-oft "
        "and RLinf's `official` models: a `</s>` stop token after the slots). Attention is bidirectional over the "
        "whole sequence in both (moojink's transformers fork); action token j is read at position prefix + j - 1.",
    )


ModelConfig = Annotated[
    SmallModelConfig | OpenVLAModelConfig | OpenVLAOFTModelConfig | OpenPIModelConfig,
    Field(discriminator="model_type"),
]

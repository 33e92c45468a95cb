"""Keys every model config shares (``actor.model``); architecture configs subclass ``ModelConfigBase``.

Kept apart from ``config/model.py`` so ``config/model_openpi.py`` can subclass it without an import cycle.
Key names follow RLinf's ``actor.model`` section where RLinf has one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlvla_cli.config.base import StrictModel

Size = Literal["tiny", "mini", "small", "full"]
Precision = Literal["fp32", "bf16", "fp16"]
ValueType = Literal["chunk_level", "action_level"]


class ModelConfigBase(StrictModel):
    """Shared model keys. Subclasses narrow ``model_type`` to a ``Literal`` (the union's discriminator)."""

    model_type: str = Field(description="Architecture: small | openvla | openvla_oft | openpi.")
    size: Size = Field(
        "full",
        description="Size preset: `tiny` (CPU tests, seconds), `mini` (trains on 2 CPU cores), `small` (one "
        "small GPU), `full` (the published model's real dimensions). Ignored for the dimensions a checkpoint in "
        "`model_path` defines.",
    )
    model_path: str | None = Field(
        None,
        description="Local directory of a Hugging Face layout checkpoint (config.json + safetensors). "
        "None builds the `size` preset with random weights.",
    )
    precision: Precision = Field("bf16", description="Parameter / compute dtype of the policy: fp32, bf16 or fp16.")
    action_dim: int = Field(7, ge=1, description="Action dimensions per step (7: xyz, rpy, gripper).")
    num_action_chunks: int = Field(1, ge=1, description="Actions predicted per policy call (the chunk C).")
    add_value_head: bool = Field(False, description="Add a value head (needed by PPO's critic; GRPO needs none).")
    value_type: ValueType = Field(
        "chunk_level",
        description="`chunk_level`: one value per prediction, values [B, 1]; `action_level`: one value per "
        "chunk step, values [B, num_action_chunks].",
    )
    is_lora: bool = Field(False, description="Train LoRA adapters (peft) instead of the full backbone.")
    lora_rank: int = Field(32, ge=1, description="LoRA rank r.")
    lora_alpha: float | None = Field(None, gt=0, description="LoRA alpha; None uses `lora_rank` (scale 1).")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    lora_target_modules: list[str] | None = Field(
        None,
        description="Module names (peft `target_modules`) that get adapters; None uses the architecture's "
        "default (every linear layer of the language model / backbone).",
    )
    lora_path: str | None = Field(
        None, description="Directory of a saved peft adapter (adapter_config.json + adapter_model.safetensors)."
    )
    image_size: int = Field(224, ge=8, description="Square input image size in pixels the policy resizes to.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")
    trust_remote_code: bool = Field(
        False, description="Allow Python code shipped inside a checkpoint directory to run. Off unless you trust it."
    )

    @model_validator(mode="after")
    def _lora_path_needs_lora(self) -> ModelConfigBase:
        if self.lora_path is not None and not self.is_lora:
            raise ValueError("`lora_path` is set but `is_lora` is false; set `is_lora: true` to load the adapter")
        return self

    @property
    def num_values(self) -> int:
        """V: value outputs per observation (1 for chunk_level, C for action_level)."""
        return self.num_action_chunks if self.value_type == "action_level" else 1

"""`actor`: the trainer (batch sizes, optimiser, DeepSpeed) and the policy model it trains."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rlvla_cli.config.base import StrictModel
from rlvla_cli.config.model import ModelConfig


class OptimConfig(StrictModel):
    """AdamW and its learning-rate schedule (RLinf's `actor.optim`; betas/eps replace adam_beta1/2, adam_eps)."""

    lr: float = Field(1.0e-4, gt=0, description="Learning rate of the policy parameters.")
    value_lr: float = Field(3.0e-3, gt=0, description="Learning rate of the value head parameters.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW (beta1, beta2), each in [0, 1).")
    eps: float = Field(1.0e-5, gt=0, description="AdamW epsilon.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay.")
    clip_grad: float = Field(1.0, ge=0, description="Clip the global gradient norm to this value; 0 disables clipping.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear learning-rate warm-up from 0.")
    lr_scheduler: Literal["constant", "cosine", "linear"] = Field(
        "constant", description="Learning-rate schedule after warm-up (decay over the run's total optimizer steps)."
    )
    critic_warmup_steps: int = Field(
        0, ge=0, description="Training steps at the start that update only the value head (policy frozen)."
    )

    @model_validator(mode="after")
    def _check_betas(self) -> OptimConfig:
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ValueError(f"`betas` {list(self.betas)} must both lie in [0, 1), e.g. [0.9, 0.999]")
        return self


class DeepSpeedConfig(StrictModel):
    """DeepSpeed engine settings of the trainer."""

    zero_stage: Literal[0, 1, 2, 3] = Field(
        2, description="ZeRO stage: 0 none, 1 optimizer states, 2 + gradients, 3 + parameters sharded over ranks."
    )
    offload_optimizer: bool = Field(False, description="Keep optimizer states in CPU memory (ZeRO-Offload).")
    offload_param: bool = Field(False, description="Keep parameters in CPU memory (needs zero_stage 3).")
    bf16: bool = Field(True, description="Train in bf16 mixed precision (ignored on a CPU-only run).")

    @model_validator(mode="after")
    def _param_offload_needs_zero3(self) -> DeepSpeedConfig:
        if self.offload_param and self.zero_stage != 3:
            raise ValueError(
                f"`offload_param: true` needs `zero_stage: 3` (got {self.zero_stage}); set zero_stage 3 or "
                "use offload_optimizer only"
            )
        return self


class ActorConfig(StrictModel):
    """The trainer processes (one per actor GPU) and the model they optimise."""

    micro_batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1,
        description="Samples per forward/backward pass on one trainer rank; `auto`: the planner picks the largest "
        "that fits the GPU (and whether to checkpoint activations) at launch and prints its choice.",
    )
    global_batch_size: int = Field(
        40,
        ge=1,
        description="Samples per optimizer step over all ranks; must divide by micro_batch_size x data-parallel size.",
    )
    enable_offload: bool = Field(
        False, description="Move weights and optimizer states to the CPU while rollout/env use the same GPU."
    )
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimizer and learning-rate schedule.")
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig, description="DeepSpeed engine settings.")
    model: ModelConfig = Field(description="The policy: discriminated by `model_type` (small, openvla, ...).")

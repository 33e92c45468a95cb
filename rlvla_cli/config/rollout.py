"""`rollout`: the inference workers that act in the envs (sampling, precision, overlap)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlvla_cli.config.base import StrictModel

Precision = Literal["fp32", "bf16", "fp16"]


class SamplingConfig(StrictModel):
    """How actions are drawn from the policy during rollouts (RLinf's `sampling_params`)."""

    do_sample: bool = Field(True, description="Sample actions in training rollouts; false takes the greedy action.")
    temperature_train: float = Field(1.0, gt=0, description="Sampling temperature for training rollouts.")
    temperature_eval: float = Field(0.6, gt=0, description="Sampling temperature for evaluation when sampling there.")
    top_k: int = Field(0, ge=0, description="Keep only the k most likely action tokens; 0 keeps all (token models).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass for action tokens; 1.0 keeps all.")


class RolloutConfig(StrictModel):
    """Rollout workers: overlap with the simulator, offload, precision and sampling."""

    pipeline_stage_num: int = Field(
        1,
        ge=1,
        description="Env groups per env worker; with S > 1 the policy infers for group s+1 while group s steps.",
    )
    enable_offload: bool = Field(
        False, description="Move the rollout copy of the weights to the CPU while the actor trains on the same GPU."
    )
    precision: Precision = Field("bf16", description="Weight dtype of the rollout copy (fp32 on a CPU-only run).")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="Action sampling parameters.")

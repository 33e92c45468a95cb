"""``actor.model`` for pi0 / pi0.5 (``model_type: openpi``): flow-matching VLAs on PaliGemma + a Gemma expert.

Key names and defaults follow RLinf's openpi settings (DESIGN.md, "pi0 / pi0.5 flow settings"): noise_level 0.5
(flow_sde), noise_logvar_range [0.08, 0.16] (flow_noise), joint_logprob False for flow_sde and True for
flow_noise, num_steps 4 (pi0) / 5 (pi0.5), train_expert_only True, LoRA rank 8 on the VLM only.
``action_dim`` (shared key) is the env's action size; openpi pads actions and states to ``model_action_dim``
(32) internally, and log-probs are reported for the first ``action_dim`` dims and ``num_action_chunks`` steps.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rlvla_cli.config.model_base import ModelConfigBase

NoiseMethod = Literal["flow_sde", "flow_noise"]

_NOISE_LEVEL_DEFAULT = 0.5
_NOISE_RANGE_DEFAULT = (0.08, 0.16)


class OpenPIModelConfig(ModelConfigBase):
    """pi0 (Black et al. 2024) and pi0.5 (Physical Intelligence 2025) with RL sampling (RLinf's pi-RL)."""

    model_type: Literal["openpi"] = Field("openpi", description="Architecture discriminator.")
    pi05: bool = Field(
        False,
        description="pi0.5 instead of pi0: discretised state tokens in the prompt and adaRMS time conditioning "
        "of the action expert (pi0: a continuous state token and an action-time MLP).",
    )
    num_action_chunks: int = Field(
        5, ge=1, description="Actions executed per policy call (RLinf's `action_chunk`; <= `action_horizon`)."
    )
    action_horizon: int = Field(
        10,
        ge=1,
        description="Actions the flow model denoises per call (openpi's `action_horizon` H, fixed by the checkpoint's "
        "training: RLinf's pi0 LIBERO 50, pi0.5 LIBERO 10, ManiSkill 8, GSEnv / MetaWorld / CALVIN 5); the first "
        "`num_action_chunks` of them are executed and scored.",
    )
    model_action_dim: int = Field(
        32, ge=1, description="Action / state width inside the model (openpi pads to 32; env dims come first)."
    )
    num_steps: int | None = Field(
        None, ge=1, description="Denoising steps per prediction; None: 4 for pi0, 5 for pi0.5 (RLinf's values)."
    )
    noise_method: NoiseMethod = Field(
        "flow_sde",
        description="`flow_sde`: ODE-to-SDE conversion with std noise_level*sqrt(t/(1-t)); `flow_noise`: ODE step "
        "plus a learned noise head whose std lies in `noise_logvar_range`.",
    )
    noise_level: float = Field(
        _NOISE_LEVEL_DEFAULT, gt=0, description="flow_sde noise scale a in sigma_t = a sqrt(t / (1 - t))."
    )
    noise_logvar_range: tuple[float, float] = Field(
        _NOISE_RANGE_DEFAULT,
        description="flow_noise [min_std, max_std] (RLinf's name): the noise head's log-variance is squashed "
        "into [log(min_std^2), log(max_std^2)].",
    )
    noise_head_hidden_dims: list[int] = Field(
        [128, 64], description="Hidden widths of the flow_noise noise head (tanh MLP on the expert output)."
    )
    joint_logprob: bool | None = Field(
        None,
        description="Score every denoising step (and the initial noise) instead of one random stochastic step; "
        "None: False for flow_sde, True for flow_noise.",
    )
    joint_logprob_reduction: Literal["mean", "sum"] = Field(
        "mean",
        description="How joint log-probs combine over the chain: `mean` over steps (RLinf, keeps PPO ratios on the "
        "scale of one step) or `sum` (the exact log-density of the whole chain).",
    )
    train_expert_only: bool = Field(
        True, description="Freeze the PaliGemma VLM (vision tower, projector, language model); train the expert."
    )
    value_after_vlm: bool = Field(
        False,
        description="Value head on the mean-pooled VLM prefix output (pi0.5 style) instead of the mean-pooled "
        "action-expert output at the scored denoising step(s).",
    )
    detach_critic_input: bool = Field(
        False,
        description="Stop the value loss's gradient at the value head's input (the mean-pooled action-expert "
        "output), so only the head learns from it and the expert is trained by the policy loss alone (RLinf's "
        "`detach_critic_input`, true in its pi0 PPO recipes). No effect with `value_after_vlm`.",
    )
    value_head_hidden_dim: int = Field(
        512, ge=4, description="Hidden width of the value head MLP (in -> h -> h/4 -> 1, GELU)."
    )
    num_images: int = Field(
        2, ge=1, le=2, description="Camera images in the prompt: 1 = `main_images`, 2 = main + `wrist_images`."
    )
    max_token_len: int | None = Field(
        None,
        ge=4,
        description="Prompt token budget (text plus pi0.5 state tokens), right-padded; None: 48 for pi0, 200 "
        "for pi0.5 (openpi's values).",
    )
    discrete_state_input: bool | None = Field(
        None,
        description="Put the state into the prompt as 256-bin tokens (pi0.5); None: True for pi0.5 (openpi's "
        "Pi0Config default). RLinf's pi0.5 recipes and openpi's pi05_libero set False (the shipped presets and "
        "catalogue entries do). pi0 always uses a continuous state token.",
    )
    image_size: int | None = Field(
        None, ge=8, description="Square image size the policy resizes to; None uses the vision tower's (224 full)."
    )
    tokenizer_path: str | None = Field(
        None,
        description="Directory or tokenizer.json of PaliGemma's tokenizer; None looks in `model_path` (and uses a "
        "built-in byte-level tokenizer for random-weight presets).",
    )
    norm_stats_path: str | None = Field(
        None,
        description="norm_stats.json (openpi layout: {norm_stats: {state|actions: {mean, std, q01, q99}}}) for "
        "normalising states and un-normalising actions; None looks inside `model_path`.",
    )
    norm_stats_key: str | None = Field(
        None, description="Sub-directory / asset id whose norm_stats.json to use when `model_path` holds several."
    )
    use_quantile_norm: bool | None = Field(
        None, description="Normalise with q01/q99 instead of mean/std; None: True for pi0.5, False for pi0 (openpi)."
    )
    lora_rank: int = Field(8, ge=1, description="LoRA rank r (RLinf: 8, on the VLM only).")

    @model_validator(mode="before")
    @classmethod
    def _fill_variant_defaults(cls, data: Any) -> Any:
        """Resolve the None defaults that depend on pi05 / noise_method, so the saved config is explicit."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        pi05 = bool(data.get("pi05", False))
        if data.get("num_steps") is None:
            data["num_steps"] = 5 if pi05 else 4
        if data.get("max_token_len") is None:
            data["max_token_len"] = 200 if pi05 else 48
        if data.get("discrete_state_input") is None:
            data["discrete_state_input"] = pi05
        if data.get("use_quantile_norm") is None:
            data["use_quantile_norm"] = pi05
        if data.get("joint_logprob") is None:
            data["joint_logprob"] = data.get("noise_method", "flow_sde") == "flow_noise"
        return data

    @model_validator(mode="after")
    def _check_consistency(self) -> OpenPIModelConfig:
        lo, hi = self.noise_logvar_range
        if not 0 < lo < hi:
            raise ValueError(
                f"`noise_logvar_range` must be [min_std, max_std] with 0 < min_std < max_std, got [{lo}, {hi}]"
            )
        if self.noise_method == "flow_noise" and self.noise_level != _NOISE_LEVEL_DEFAULT:
            raise ValueError(
                "`noise_level` only applies to noise_method flow_sde; with flow_noise set `noise_logvar_range` "
                "instead (or switch `noise_method` to flow_sde)"
            )
        if self.noise_method == "flow_sde" and tuple(self.noise_logvar_range) != _NOISE_RANGE_DEFAULT:
            raise ValueError(
                "`noise_logvar_range` only applies to noise_method flow_noise; with flow_sde set `noise_level` "
                "instead (or switch `noise_method` to flow_noise)"
            )
        if self.num_action_chunks > self.action_horizon:
            raise ValueError(
                f"`num_action_chunks` ({self.num_action_chunks}) exceeds `action_horizon` ({self.action_horizon}); "
                "raise action_horizon or execute fewer actions per call"
            )
        if self.action_dim > self.model_action_dim:
            raise ValueError(
                f"`action_dim` ({self.action_dim}) exceeds `model_action_dim` ({self.model_action_dim}), the padded "
                "action width inside the model"
            )
        if self.discrete_state_input and not self.pi05:
            raise ValueError("`discrete_state_input` needs `pi05: true`; pi0 feeds the state as a continuous token")
        if self.is_lora and self.gradient_checkpointing:
            raise ValueError(
                "gradient checkpointing is not supported together with LoRA for openpi (as in RLinf); set "
                "`gradient_checkpointing: false` or `is_lora: false`"
            )
        if self.value_type == "action_level" and self.add_value_head:
            raise ValueError("openpi predicts one value per call; set `value_type: chunk_level`")
        return self

    @property
    def resolved_num_steps(self) -> int:
        """Denoising steps K (never None after validation)."""
        return int(self.num_steps or (5 if self.pi05 else 4))

"""``algorithm``: every PPO / GRPO key, with RLinf's names so its recipes carry over.

Consumed by ``rlvla_cli.algorithms`` (advantages, losses, levels, update); a test checks that every field
here is read by some code path there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlvla_cli.config.base import StrictModel

Level = Literal["token_level", "action_level", "chunk_level"]
RewardLevel = Literal["action_level", "chunk_level"]


class AlgorithmConfig(StrictModel):
    """PPO (GAE, actor-critic) or GRPO (group-relative, actor only) settings."""

    adv_type: Literal["gae", "grpo"] = Field(
        "gae", description="Advantage estimator: `gae` (needs a value head) or `grpo` (group-relative returns)."
    )
    loss_type: Literal["actor_critic", "actor"] = Field(
        "actor_critic", description="`actor_critic` trains policy + value head; `actor` trains the policy only."
    )
    gamma: float = Field(0.99, ge=0.0, le=1.0, description="Discount factor per (chunk or action) step.")
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda (bias/variance trade-off).")
    normalize_advantages: bool = Field(
        True,
        description="Normalise advantages to zero mean / unit std over the loss-masked batch (GAE and GRPO). RLinf "
        "normalises GAE's always and GRPO's never (set false for RLinf's GRPO arithmetic).",
    )
    advantage_norm_scope: Literal["batch", "minibatch"] = Field(
        "batch",
        description="With normalize_advantages: normalise over the whole rollout batch once (`batch`), or over "
        "each global batch (minibatch) as the update draws it (`minibatch`: ManiSkill's / cleanrl's PPO, "
        "examples/baselines/ppo/ppo.py in haosulab/ManiSkill).",
    )
    finite_horizon_gae: bool = Field(
        False,
        description="GAE renormalised over the k-step estimates that fit before the rollout or episode ends "
        "(ManiSkill's PPO baseline default, see algorithms/advantages.py: finite_horizon_gae); false: standard GAE.",
    )
    update_epoch: int = Field(1, ge=1, description="Passes over each rollout batch per training step.")
    target_kl: float | None = Field(
        None,
        gt=0.0,
        description="Early stop of the update: before each optimizer step the approximate KL (k3) of the first "
        "micro-batch of the global batch is measured; above this value that step and every later one of this "
        "training step are skipped (ManiSkill's / cleanrl's PPO, target_kl 0.1 there; logged as "
        "train/early_stopped_epochs). null: off.",
    )
    clip_ratio_low: float = Field(0.2, gt=0.0, lt=1.0, description="PPO clip: ratio lower bound is 1 - this.")
    clip_ratio_high: float = Field(0.2, gt=0.0, description="PPO clip: ratio upper bound is 1 + this.")
    clip_ratio_c: float | None = Field(
        3.0,
        gt=1.0,
        description="Dual-clip bound c for negative advantages (loss <= c|A|); null turns it off (RLinf's worker "
        "applies its clip_ratio_c only to GR00T, so its OpenVLA / openpi recipes run without it).",
    )
    logprob_ratio_clamp: float | None = Field(
        20.0,
        gt=0.0,
        description="Clamp log(pi/pi_old) to [-x, x] before exp (avoids overflow); null: off (RLinf has no such "
        "clamp for OpenVLA / openpi).",
    )
    value_clip: float | None = Field(
        0.2, gt=0.0, description="Value clipping around the old value (V_old +- this); null turns it off."
    )
    huber_delta: float = Field(10.0, gt=0.0, description="Huber delta of the value loss.")
    value_loss_coef: float = Field(1.0, ge=0.0, description="Weight of the value loss in the total loss.")
    entropy_bonus: float = Field(0.0, ge=0.0, description="Entropy bonus coefficient (0 = off).")
    reward_type: RewardLevel = Field(
        "chunk_level",
        description="`chunk_level`: one reward per chunk (summed) and GAE over chunks; "
        "`action_level`: GAE over every executed action.",
    )
    logprob_type: Level = Field(
        "token_level",
        description="Level of the PPO ratio: per action dimension (token), per action (sum over dims) "
        "or per chunk (sum over actions and dims).",
    )
    entropy_type: Level = Field("token_level", description="Level at which the entropy is summed before averaging.")
    group_size: int = Field(
        1, ge=1, description="GRPO: consecutive envs that share a reset state form one group of this size."
    )
    filter_rewards: bool = Field(
        False, description="GRPO: drop groups whose mean score is outside [rewards_lower_bound, rewards_upper_bound]."
    )
    rewards_lower_bound: float = Field(0.1, description="GRPO filter: groups with a mean score below this are dropped.")
    rewards_upper_bound: float = Field(0.9, description="GRPO filter: groups with a mean score above this are dropped.")
    shuffle_micro_batches: bool = Field(True, description="Shuffle samples before splitting them into micro-batches.")
    bootstrap_type: Literal["standard", "always", "none"] = Field(
        "standard",
        description="GAE: which episode ends add gamma * V(final observation): `standard` truncations only "
        "(time limits; terminations end the return), `always` truncations and terminations (RLinf's ManiSkill "
        "recipes with auto_reset), `none` neither (a time limit counts as terminal: RLinf without auto_reset). "
        "See docs/porting_from_rlinf.md.",
    )
    loss_agg: Literal["masked_mean", "episode_weighted"] = Field(
        "masked_mean",
        description="How policy and value loss terms are averaged: `masked_mean` over the loss-masked terms (long "
        "episodes weigh more), or `episode_weighted`: mean over all terms of L * mask * (T*C / episode length), "
        "each env's episode weighing the same (RLinf's embodied worker without auto_reset; needs "
        "env.train.auto_reset: false).",
    )

    # Capabilities of the chosen estimator / objective (algorithms/ registers them under these names).
    @property
    def needs_rollout_values(self) -> bool:
        """The advantage estimator bootstraps from V(o_t) recorded in the rollout (GAE; GRPO scores episodes)."""
        return self.adv_type == "gae"

    @property
    def trains_critic(self) -> bool:
        """The objective has a value loss (the policy must predict values in training)."""
        return self.loss_type == "actor_critic"

    @property
    def groups_envs(self) -> bool:
        """Advantages are relative within groups of ``group_size`` envs sharing a reset state (GRPO)."""
        return self.adv_type == "grpo"

    @model_validator(mode="after")
    def _check_combinations(self) -> AlgorithmConfig:
        if self.adv_type == "gae" and self.loss_type != "actor_critic":
            raise ValueError("adv_type `gae` needs a value function: set loss_type: actor_critic (or adv_type: grpo)")
        if self.adv_type == "grpo" and self.group_size < 2:
            raise ValueError("adv_type `grpo` needs group_size >= 2 (advantages are relative within a group)")
        if self.logprob_type == "chunk_level" and self.reward_type == "action_level":
            raise ValueError(
                "logprob_type `chunk_level` cannot use per-action advantages: set reward_type: chunk_level "
                "or logprob_type: action_level / token_level"
            )
        if self.filter_rewards and self.rewards_lower_bound > self.rewards_upper_bound:
            raise ValueError("rewards_lower_bound must be <= rewards_upper_bound")
        return self

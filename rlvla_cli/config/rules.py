"""Cross-section rules of a whole config (those that need no GPU placement; the planner checks the rest).

Each rule reads the validated sections and raises `RuleError` (a ValueError pydantic keeps in the error's
context), carrying the dotted key to blame and the fix. `config_warnings` lists legal but suspicious choices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig

# Action size each simulator's adapter takes (7-D end-effector delta: xyz, rpy, gripper).


class RuleError(ValueError):
    """A broken cross-field rule: ``key`` is the dotted key to change, ``fix`` how to change it."""

    def __init__(self, key: str, message: str, fix: str):
        super().__init__(message)
        self.key, self.message, self.fix = key, message, fix


def check_rules(cfg: RootConfig) -> None:
    """Run every rule on a RootConfig; the first broken one raises `RuleError`."""
    for rule in (
        _state_obs_need_image_free_policy,  # first: with no camera no other model setting can help
        _chunks_divide_rollout,
        _grpo_groups,
        _critic_matches_algorithm,
        _value_levels,
        _action_dims,
        _openvla_single_action,
        _precision_matches_deepspeed,
        _rollout_numerics_match_trainer,
        _batch_sizes,
        _critic_warmup_needs_critic,
        _one_episode_per_env,
    ):
        rule(cfg)


def _envs(cfg: RootConfig) -> list[tuple[str, Any]]:
    return [("env.train", cfg.env.train), ("env.eval", cfg.env.eval)]


def _chunks_divide_rollout(cfg: RootConfig) -> None:
    chunks = cfg.actor.model.num_action_chunks
    for name, env in _envs(cfg):
        if env.max_steps_per_rollout_epoch % chunks:
            low = env.max_steps_per_rollout_epoch // chunks * chunks
            raise RuleError(
                f"{name}.max_steps_per_rollout_epoch",
                f"{env.max_steps_per_rollout_epoch} steps is not a whole number of action chunks of "
                f"{chunks} (actor.model.num_action_chunks)",
                f"use a multiple of {chunks}, e.g. {max(low, chunks)} or {low + chunks}",
            )


def _grpo_groups(cfg: RootConfig) -> None:
    algo, train = cfg.algorithm, cfg.env.train
    if not algo.groups_envs:
        if train.group_size > 1:
            raise RuleError(
                "env.train.group_size",
                f"group_size {train.group_size} shares reset states between envs, which only GRPO uses",
                "set env.train.group_size: 1, or algorithm.adv_type: grpo",
            )
        return
    if train.group_size != algo.group_size:
        raise RuleError(
            "env.train.group_size",
            f"the env groups ({train.group_size} envs share a reset state) differ from algorithm.group_size "
            f"({algo.group_size})",
            "set env.train.group_size: ${algorithm.group_size}",
        )
    if train.total_num_envs % algo.group_size or train.total_num_envs < algo.group_size:
        raise RuleError(
            "env.train.total_num_envs",
            f"{train.total_num_envs} envs do not split into GRPO groups of {algo.group_size}",
            f"use a multiple of {algo.group_size} envs",
        )


def _one_episode_per_env(cfg: RootConfig) -> None:
    """GRPO scores an env's episode and ``loss_agg: episode_weighted`` weighs it by its length: both need one
    episode per env per rollout. With auto-reset an env that succeeds twice scores 2 and its credit spreads over
    both episodes (RLinf's GRPO recipes run with auto_reset false; issue 16)."""
    algo, train = cfg.algorithm, cfg.env.train
    if not train.auto_reset:
        return
    if algo.groups_envs:
        raise RuleError(
            "env.train.auto_reset",
            "GRPO scores one episode per env, but with auto_reset an env starts new episodes inside the rollout "
            "and their rewards would be mixed into one score",
            "set env.train.auto_reset: false (as RLinf's GRPO recipes), or algorithm.adv_type: gae",
        )
    if algo.loss_agg == "episode_weighted":
        raise RuleError(
            "algorithm.loss_agg",
            "loss_agg episode_weighted weighs each env's single episode by its length, but with auto_reset an env "
            "holds several episodes per rollout (RLinf uses the plain mean there)",
            "set algorithm.loss_agg: masked_mean, or env.train.auto_reset: false",
        )


def _critic_matches_algorithm(cfg: RootConfig) -> None:
    algo, model = cfg.algorithm, cfg.actor.model
    if algo.groups_envs and algo.trains_critic:
        raise RuleError(
            "algorithm.loss_type",
            "GRPO has no value targets, so loss_type actor_critic would train the critic on nothing",
            "set algorithm.loss_type: actor (and actor.model.add_value_head: false)",
        )
    if algo.trains_critic and not model.add_value_head:
        raise RuleError(
            "actor.model.add_value_head",
            "loss_type actor_critic (PPO with GAE) needs a value head, but add_value_head is false",
            "set actor.model.add_value_head: true",
        )


def _value_levels(cfg: RootConfig) -> None:
    model, algo = cfg.actor.model, cfg.algorithm
    if model.add_value_head and model.value_type == "action_level" and algo.reward_type != "action_level":
        raise RuleError(
            "actor.model.value_type",
            "one value per action (value_type action_level) needs per-action rewards, but reward_type is chunk_level",
            "set algorithm.reward_type: action_level, or actor.model.value_type: chunk_level",
        )


def _action_dims(cfg: RootConfig) -> None:
    model = cfg.actor.model
    for name, env in _envs(cfg):
        expected = env.action_dim
        if expected is not None and model.action_dim != expected:
            raise RuleError(
                "actor.model.action_dim",
                f"the policy emits {model.action_dim}-D actions but {name} ({env.env_type}) takes {expected}-D",
                f"set actor.model.action_dim: {expected}",
            )
    if cfg.env.train.env_type != cfg.env.eval.env_type:
        raise RuleError(
            "env.eval.env_type",
            f"training runs in {cfg.env.train.env_type} but evaluation in {cfg.env.eval.env_type}; the policy's "
            "observations (cameras, state) would not match",
            f"set env.eval.env_type: {cfg.env.train.env_type}",
        )


def _openvla_single_action(cfg: RootConfig) -> None:
    model = cfg.actor.model
    if model.model_type == "openvla" and model.num_action_chunks != 1:
        raise RuleError(
            "actor.model.num_action_chunks",
            f"OpenVLA decodes one action per call, got num_action_chunks {model.num_action_chunks}",
            "set actor.model.num_action_chunks: 1, or use model_type: openvla_oft for action chunks",
        )


def _precision_matches_deepspeed(cfg: RootConfig) -> None:
    if cfg.actor.model.precision == "fp16" and cfg.actor.deepspeed.bf16:
        raise RuleError(
            "actor.deepspeed.bf16",
            "the model is fp16 but DeepSpeed is asked for bf16 mixed precision",
            "set actor.model.precision: bf16, or actor.deepspeed.bf16: false",
        )


def _rollout_numerics_match_trainer(cfg: RootConfig) -> None:
    """PPO's importance ratio divides the trainer's recomputed action probability by the rollout's, so both must
    come from the same arithmetic. An fp32 model trained under bf16 autocast (``deepspeed.bf16`` on GPUs) but
    rolled out by an fp32 copy does not: the log-prob gap grows as the policy sharpens. Measured on ManiSkill
    PushCube (small policy, H200): eval success stalled below 0.6 in 7 min, against 1.0 within 4.3 min in fp32."""
    if cfg.actor.model.precision == "fp32" and cfg.actor.deepspeed.bf16 and cfg.rollout.precision == "fp32":
        raise RuleError(
            "actor.deepspeed.bf16",
            "the fp32 model would be trained in bf16 mixed precision on GPUs while the fp32 rollout copy samples "
            "its actions, so PPO's ratios compare different arithmetic",
            "set actor.deepspeed.bf16: false (fp32 training: PushCube reached 1.0 eval success this way), or "
            "rollout.precision: bf16 (the same bf16 matmuls on both sides; not measured on PushCube)",
        )


def _batch_sizes(cfg: RootConfig) -> None:
    actor = cfg.actor
    if actor.micro_batch_size == "auto":  # the planner picks a divisor at launch (placement/auto_micro.py)
        return
    if actor.global_batch_size % actor.micro_batch_size:
        raise RuleError(
            "actor.global_batch_size",
            f"{actor.global_batch_size} is not a multiple of micro_batch_size {actor.micro_batch_size}",
            f"use a multiple of {actor.micro_batch_size} (x the number of actor GPUs)",
        )


def _critic_warmup_needs_critic(cfg: RootConfig) -> None:
    if cfg.actor.optim.critic_warmup_steps > 0 and not cfg.actor.model.add_value_head:
        raise RuleError(
            "actor.optim.critic_warmup_steps",
            f"{cfg.actor.optim.critic_warmup_steps} critic warm-up steps but the model has no value head",
            "set actor.optim.critic_warmup_steps: 0, or actor.model.add_value_head: true",
        )


def _state_obs_need_image_free_policy(cfg: RootConfig) -> None:
    """ManiSkill ``obs_mode: state`` renders no camera: only the small policy without its image encoder fits."""
    model = cfg.actor.model
    for name, env in _envs(cfg):
        if env.env_type != "maniskill" or env.init_params.obs_mode != "state":
            continue
        if model.model_type != "small":
            raise RuleError(
                f"{name}.init_params.obs_mode",
                f"{name} gives state observations only (obs_mode state) but {model.model_type} needs camera images",
                "use obs_mode rgb, or actor.model.model_type: small with use_image: false",
            )
        if model.use_image:
            raise RuleError(
                "actor.model.use_image",
                f"{name} gives state observations only (obs_mode state) but the small policy reads images",
                "set actor.model.use_image: false (and state_dim to the env's state size)",
            )


def config_warnings(cfg: RootConfig) -> list[str]:
    """Legal but probably unintended settings, one sentence each (printed by `config validate` and `train`)."""
    notes = []
    model, algo = cfg.actor.model, cfg.algorithm
    if algo.groups_envs and model.add_value_head:
        notes.append("GRPO uses no critic: actor.model.add_value_head: true only costs memory; set it false.")
    samples = cfg.samples_per_step
    if cfg.actor.global_batch_size > samples:
        notes.append(
            f"actor.global_batch_size {cfg.actor.global_batch_size} exceeds the {samples} samples a step collects "
            "(envs x chunk steps x rollout_epoch): each step makes a single, smaller optimizer step."
        )
    if cfg.env.eval.group_size > 1:
        notes.append(
            f"env.eval.group_size is {cfg.env.eval.group_size}: evaluation envs would share initial states in groups; "
            "set env.eval.group_size: 1 for distinct ones."
        )
    if not cfg.rollout.sampling.do_sample and cfg.runner.only_eval is False:
        notes.append("rollout.sampling.do_sample is false: greedy rollouts make PPO/GRPO ratios meaningless.")
    if "swanlab" in cfg.runner.logger.logger_backends and cfg.runner.logger.swanlab_mode == "cloud":
        notes.append("swanlab_mode cloud needs network access and a login; offline works everywhere.")
    return notes

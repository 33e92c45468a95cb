"""The key map of `rlvla config import-rlinf`: RLinf embodied YAML keys -> rlvla keys, or why a key is dropped.

Patterns are dotted keys matched with ``fnmatch`` (``env.*`` covers ``env.train`` and ``env.eval``); the first
matching row of a table wins. Keys in no table are kept under the same name when rlvla's schema has that key,
and are unsupported (exit 2) otherwise. Value-dependent keys (the algorithm switches of issue 16, the openpi
noise options, the Adam betas) are handled in ``rlinf_import.py``. Sources: RLinf/RLinf examples/embodiment/config
(recipes, env/, model/), rlinf/workers/actor/embodied_fsdp_actor_worker.py, rlinf/models/embodiment/openpi.
"""

from __future__ import annotations

# RLinf key -> rlvla key (same value).
RENAMED: dict[str, str] = {
    "actor.seed": "runner.seed",
    "actor.optim.adam_eps": "actor.optim.eps",
    "actor.fsdp_config.gradient_checkpointing": "actor.model.gradient_checkpointing",
    "rollout.model.precision": "rollout.precision",
    "rollout.sampling_params.do_sample": "rollout.sampling.do_sample",
    "rollout.sampling_params.temperature_train": "rollout.sampling.temperature_train",
    "rollout.sampling_params.temperature_eval": "rollout.sampling.temperature_eval",
    "rollout.sampling_params.top_p": "rollout.sampling.top_p",
    "actor.model.openpi.num_images_in_input": "actor.model.num_images",
    "actor.model.openpi.action_chunk": "actor.model.num_action_chunks",
    "actor.model.openpi.action_env_dim": "actor.model.action_dim",
    "actor.model.openpi.noise_method": "actor.model.noise_method",
    "actor.model.openpi.noise_level": "actor.model.noise_level",
    "actor.model.openpi.noise_logvar_range": "actor.model.noise_logvar_range",
    "actor.model.openpi.num_steps": "actor.model.num_steps",
    "actor.model.openpi.train_expert_only": "actor.model.train_expert_only",
    "actor.model.openpi.joint_logprob": "actor.model.joint_logprob",
    "actor.model.openpi.detach_critic_input": "actor.model.detach_critic_input",
    "actor.model.openpi.value_after_vlm": "actor.model.value_after_vlm",
    "actor.model.openpi.add_value_head": "actor.model.add_value_head",
    "env.*.task_suite_name": "init_params.task_suite_name",  # relative to the env section
    "env.*.init_params.camera_heights": "init_params.camera_height",
    "env.*.init_params.camera_widths": "init_params.camera_width",
    "env.*.init_params.sim_config.sim_freq": "init_params.sim_freq",
    "env.*.init_params.sim_config.control_freq": "init_params.control_freq",
}

# RLinf key -> why rlvla does not need it (the value carries no behaviour rlvla lacks).
DROPPED: dict[str, str] = {
    "hydra.*": "Hydra's run settings; rlvla composes `defaults:` itself",
    "runner.task_type": "rlvla runs embodied tasks only",
    "*.group_name": "Ray worker-group names; rlvla spawns its own processes",
    "actor.training_backend": "rlvla trains with DeepSpeed (actor.deepspeed)",
    "rollout.generation_backend": "rlvla's rollout runs the HF-format policy itself",
    "rollout.backend": "rlvla's rollout runs the HF-format policy itself",
    "rollout.model.model_path": "the rollout uses the actor's weights (synced every step)",
    "rollout.recompute_logprobs": "the trainer recomputes log-probs from forward_inputs",
    "rollout.unnorm_key": "the statistics key is actor.model.unnorm_key",
    "actor.fsdp_config.*": "FSDP settings; rlvla shards with DeepSpeed ZeRO (actor.deepspeed)",
    "weight_syncer.*": "rlvla syncs weights after every update (shared storage / NCCL buckets)",
    "reward.use_reward_model": "no reward model (false in the recipe)",
    "critic.use_critic_model": "no separate critic model (false in the recipe); the value head is the critic",
    "algorithm.kl_penalty": "KL estimator name; RLinf's embodied PPO uses no KL term (kl_beta 0)",
    "algorithm.kl_beta": "0: no KL penalty, as rlvla",
    "algorithm.entropy_op_type": "kernel choice for the entropy, no effect on the number",
    "algorithm.clip_log_ratio_min": "RLinf's worker applies it only to GR00T; algorithm.logprob_ratio_clamp is null",
    "algorithm.clip_log_ratio_max": "RLinf's worker applies it only to GR00T; algorithm.logprob_ratio_clamp is null",
    "algorithm.advantage_mode": "used only by RLinf's grpo_video / grpo_dynamic estimators",
    "runner.ckpt_path": "null in the recipe; rlvla evaluates a checkpoint with `rlvla eval --checkpoint`",
    "actor.model.hidden_size": "read from the checkpoint's config",
    "actor.model.low_cpu_mem_usage": "rlvla always loads checkpoints into empty (meta) weights",
    "actor.model.policy_setup": "rlvla's ManiSkill adapter uses the WidowX bridge action convention",
    "actor.model.use_proprio": "pi0 / pi0.5 always read the state",
    "actor.model.openpi.config_name": "read into actor.model.pi05 (pi05_* names)",
    "actor.model.openpi.use_dsrl": "false: DSRL is off",
    "actor.model.openpi.dsrl_*": "DSRL settings (DSRL is off)",
    "env.*.policy_setup": "rlvla's ManiSkill adapter uses the WidowX bridge action convention",
    "env.*.enable_offload": "rlvla's env workers keep their simulators",
    "env.*.is_eval": "rlvla knows the evaluation envs from env.eval",
    "env.*.use_ordered_reset_state_ids": "rlvla draws reset states by seed (use_fixed_reset_state_ids)",
    "env.*.specific_reset_id": "null: reset states from the whole suite",
    "env.*.use_step_penalty": "false: no step penalty",
    "env.*.reset_gripper_open": "rlvla's LIBERO adapter resets as LIBERO does",
    "env.*.init_params.num_envs": "set from total_num_envs",
    "env.*.init_params.max_episode_steps": "same as the env's max_episode_steps",
    "env.*.init_params.control_mode": "rlvla's adapter picks the controller of the task",
    "env.*.init_params.sensor_configs.*": "rendering options; rlvla's adapter sets the cameras",
    "env.*.init_params.render_mode": "rendering options; rlvla's adapter sets the cameras",
    "env.*.init_params.obj_set": "the object set follows the task id",
    "env.*.init_params.use_multiple_plates": "false: one plate per scene",
    "env.*.init_params.sim_backend": "rlvla picks physx_cuda on GPUs (RLinf's `gpu`)",
}

# Values that mean "off" for the DROPPED / openpi keys below; any other value is unsupported.
OFF_VALUES: dict[str, object] = {
    "reward.use_reward_model": False,
    "critic.use_critic_model": False,
    "algorithm.kl_beta": 0.0,
    "actor.model.openpi.use_dsrl": False,
    "env.*.use_step_penalty": False,
    "env.*.specific_reset_id": None,
    "runner.ckpt_path": None,
    "actor.model.use_film": False,
    "actor.model.openpi.noise_anneal": False,
    "actor.model.openpi.ignore_last": False,
    "actor.model.openpi.chunk_critic_input": False,
    "actor.model.openpi.value_vlm_mode": "mean_token",
    "env.*.init_params.use_multiple_plates": False,
    "rollout.sampling_params.repetition_penalty": 1.0,
}

# RLinf keys rlvla lacks -> what to use instead (refused unless the value is the "off" value above).
UNSUPPORTED: dict[str, str] = {
    "actor.model.openpi.noise_anneal": "rlvla keeps the flow-SDE noise fixed: set actor.model.noise_level "
    "(and drop noise_anneal / noise_params)",
    "actor.model.openpi.noise_params": "noise annealing is not supported: set actor.model.noise_level",
    "actor.model.openpi.ignore_last": "rlvla injects noise at every denoising step: remove ignore_last",
    "actor.model.openpi.chunk_critic_input": "rlvla's value head pools the whole action horizon: remove "
    "chunk_critic_input",
    "actor.model.openpi.value_vlm_mode": "rlvla's value_after_vlm mean-pools the VLM prefix (RLinf's mean_token)",
    "actor.model.use_film": "FiLM conditioning is not implemented: use_film false",
    "rollout.sampling_params.repetition_penalty": "actions are sampled without a repetition penalty: 1.0",
}

# openpi's config_name fixes the checkpoint's action horizon (rlvla's actor.model.action_horizon; see
# rlvla_cli/config/model_openpi.py: RLinf's pi0 LIBERO 50, pi0.5 LIBERO 10, ManiSkill 8).
ACTION_HORIZON: dict[str, int] = {"pi0_libero": 50, "pi05_libero": 10, "pi0_maniskill": 8, "pi05_maniskill": 8}

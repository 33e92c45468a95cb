"""Capabilities the runtime, evaluation and rules ask of the configs instead of switching on type names."""

from __future__ import annotations

import pytest

from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.config.env import BuiltinEnvConfig, LiberoEnvConfig, ManiSkillEnvConfig
from rlvla_cli.evaluation.plan import make_plan


@pytest.mark.parametrize(
    "env_cfg,label,tasks,init_states,one_sim,action_dim",
    [
        (BuiltinEnvConfig(), "builtin-tabletop", 1, False, True, 7),
        (ManiSkillEnvConfig(init_params={"id": "PushCube-v1"}), "PushCube-v1", 1, False, False, 7),
        (ManiSkillEnvConfig(init_params={"sim_backend": "physx_cuda"}), "PickCube-v1", 1, False, True, 7),
        (ManiSkillEnvConfig(init_params={"control_mode": "pd_joint_delta_pos"}), "PickCube-v1", 1, False, False, None),
        (LiberoEnvConfig(), "libero_spatial", 10, True, False, 7),
        (LiberoEnvConfig(init_params={"task_suite_name": "libero_90"}), "libero_90", 90, True, False, 7),
        (LiberoEnvConfig(init_params={"task_ids": [0, 3]}), "libero_spatial", 2, True, False, 7),
    ],
)
def test_env_capabilities(env_cfg, label, tasks, init_states, one_sim, action_dim):
    assert (env_cfg.task_label, env_cfg.num_tasks, env_cfg.episodes_are_init_states) == (label, tasks, init_states)
    assert env_cfg.one_simulator_for_all_envs is one_sim and env_cfg.action_dim == action_dim
    plan = make_plan(env_cfg, episodes_per_task=2)
    assert plan.label == label and plan.episodes == 2 * tasks  # LIBERO: 2 init states of each task
    assert plan.per_task_rows is (init_states and tasks > 1)


def test_algorithm_capabilities():
    ppo = AlgorithmConfig()
    assert ppo.needs_rollout_values and ppo.trains_critic and not ppo.groups_envs
    grpo = AlgorithmConfig(adv_type="grpo", loss_type="actor", group_size=8)
    assert not grpo.needs_rollout_values and not grpo.trains_critic and grpo.groups_envs

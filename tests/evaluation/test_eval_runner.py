"""The episode runner on the built-in task: plans, waves, per-task rows, OOD sets, reused envs, workers."""

from __future__ import annotations

import pytest
import torch

from rlvla_cli.config.env import BuiltinEnvConfig, LiberoEnvConfig, LiberoInitParams
from rlvla_cli.config.model import SmallModelConfig
from rlvla_cli.envs.builtin import instruction_for, sample_layout
from rlvla_cli.evaluation.episodes import run_wave, sampling_for
from rlvla_cli.evaluation.plan import make_plan
from rlvla_cli.evaluation.runner import eval_env_config, evaluate_policy, evaluate_sets, open_eval_env
from rlvla_cli.models.registry import build_policy


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return build_policy(SmallModelConfig(size="tiny", state_dim=3, num_action_chunks=4))


def _env(**update) -> BuiltinEnvConfig:
    return BuiltinEnvConfig(total_num_envs=4, max_episode_steps=12, seed=7, **update)


class OraclePolicy(torch.nn.Module):
    """Moves straight to the target of the built-in env and closes the gripper: always succeeds."""

    num_action_chunks = 1

    def __init__(self, env):
        super().__init__()
        self.env = env

    def predict(self, obs, mode="eval", sampling=None):
        delta = (self.env.target_xy() - obs["states"][:, :2]) / self.env.params.max_delta
        actions = torch.zeros(obs["states"].shape[0], 1, 7)
        actions[:, 0, :2] = delta.clamp(-1, 1)
        close = delta.abs().max(dim=-1).values <= 1.0
        actions[:, 0, 6] = torch.where(close, -1.0, 1.0)
        return type("Out", (), {"actions": actions})()


def test_plan_counts_and_waves():
    plan = make_plan(_env(), 10)
    assert plan.episodes == 10 and plan.state_ids == tuple(range(7, 17)) and not plan.per_task_rows
    waves = plan.waves(4)
    assert [len(w) for w in waves] == [4, 4, 4] and waves[-1] == [15, 16, 15, 15]  # padded, not counted
    libero = LiberoEnvConfig(init_params=LiberoInitParams(task_suite_name="libero_goal"))
    plan = make_plan(libero, 2)  # init states 0 and 1 of each of the 10 tasks (50 stored per task)
    assert plan.episodes == 20 and plan.state_ids[:4] == (0, 1, 50, 51) and plan.per_task_rows
    assert make_plan(libero, None).episodes == 500  # every task x 50 init states, RLinf's protocol
    subset = LiberoEnvConfig(init_params=LiberoInitParams(task_ids=[3, 7]))
    assert make_plan(subset, 3, task_counts=[2, 5]).state_ids == (0, 1, 0, 2, 3, 4)  # task 0 wraps
    assert make_plan(subset, None, task_counts=[2, 5]).episodes == 7


def test_libero_plan_ids_land_on_the_right_tasks():
    """The plan's ids, decoded by the LIBERO adapter's own mapping, give N distinct init states per task."""
    libero_env = pytest.importorskip("rlvla_cli.envs.libero")
    counts = [50] * 10
    ids = make_plan(LiberoEnvConfig(), 3, task_counts=counts).state_ids
    decoded = [libero_env.state_id_to_task(i, counts) for i in ids]
    assert decoded == [(task, init) for task in range(10) for init in range(3)]


def test_wave_is_unbiased_one_episode_per_env():
    """An oracle finishes in a few steps; still exactly one record per env, each from its own state id."""
    from rlvla_cli.envs.registry import build_env

    env = build_env(eval_env_config(_env(), False))
    records = run_wave(env, OraclePolicy(env), [3, 4, 5, 6], sampling_for(True), 12)
    assert [r.state_id for r in records] == [3, 4, 5, 6]
    assert all(r.success for r in records) and all(r.length < 12 for r in records)
    for record in records:  # each row is labelled with the instruction of that env's own episode
        layout = sample_layout(record.state_id, env.params.num_objects, env.params.success_radius)
        assert record.task == instruction_for(int(layout["colours"][layout["target"]]), layout["phrasing"])
    env.close()


def test_evaluate_policy_counts_every_episode_once(policy):
    seen = []
    policy.train()
    result = evaluate_policy(policy, _env(), 6, greedy=True, progress=lambda d, t: seen.append((d, t)))
    assert policy.training  # train mode restored after evaluation
    (row,) = result.tasks
    assert row.episodes == 6 and row.task == "builtin-tabletop" and row.eval_set == "eval"
    assert all(1 <= n <= 12 for n in row.lengths)
    assert seen[-1] == (6, 6)


def test_greedy_is_deterministic_and_sampling_differs(policy):
    first = evaluate_policy(policy, _env(), 4, greedy=True)
    second = evaluate_policy(policy, _env(), 4, greedy=True)
    assert first.tasks[0].returns == second.tasks[0].returns
    torch.manual_seed(1)
    sampled = evaluate_policy(policy, _env(), 4, greedy=False)
    assert sampled.tasks[0].returns != first.tasks[0].returns


def test_ood_sets_get_their_own_rows_and_reused_env(policy):
    ood = _env(init_params={"num_objects": 5})
    result = evaluate_sets(policy, {"eval": _env(), "ood_objects": ood}, 4)
    assert result.eval_sets == ["eval", "ood_objects"]
    assert [t.episodes for t in result.tasks] == [4, 4]
    env = open_eval_env(_env())
    try:
        again = evaluate_policy(policy, _env(), 4, env=env)
        twice = evaluate_policy(policy, _env(), 4, env=env)  # the env stays open between evaluations
    finally:
        env.close()
    assert again.tasks[0].returns == twice.tasks[0].returns == result.tasks[0].returns


@pytest.mark.slow
def test_env_worker_processes_match_in_process(policy):
    in_process = evaluate_policy(policy, _env(), 4, greedy=True)
    workers = evaluate_policy(policy, _env(), 4, greedy=True, num_workers=2)
    assert workers.tasks[0].returns == pytest.approx(in_process.tasks[0].returns)
    assert workers.tasks[0].lengths == in_process.tasks[0].lengths

"""scripts/race_maniskill_baseline.py: commands, curve parsing, the summary table, and its baseline's
finite-horizon GAE against the library's (two implementations of ManiSkill's documented formula)."""

import json

import pytest
import torch
from script_loader import REPO, load_script

from rlvla_cli.algorithms.advantages import finite_horizon_gae

PARITY = REPO / "configs" / "maniskill_ppo_small_pushcube_state_parity.yaml"


def test_rlvla_command_turns_the_env_step_budget_into_steps():
    script = load_script("race_maniskill_baseline")
    args = script.parse_args(["--config", str(PARITY), "--env-steps", "48000", "--eval-every-steps", "8000",
                              "--eval-envs", "16", "actor.optim.lr=1e-3"])
    command = script.rlvla_command(args, 2, REPO / "runs" / "x")
    # parity preset: 16 envs x 50 steps = 800 env steps per training step
    assert "runner.max_epochs=60" in command and "runner.val_check_interval=10" in command
    assert "runner.seed=2" in command and "env.eval.total_num_envs=16" in command
    assert command[-1] == "actor.optim.lr=1e-3"


def test_baseline_command_runs_a_user_script_with_the_issue_settings(tmp_path):
    script = load_script("race_maniskill_baseline")
    args = script.parse_args(["--baseline-script", "/tmp/ppo_cpu.py", "--baseline-python", "/venv/bin/python",
                              "--env-steps", "24000", "--eval-every-steps", "4000"])
    command = script.baseline_command(args, 1, tmp_path)
    assert command[:2] == ["/venv/bin/python", "/tmp/ppo_cpu.py"]
    for flag in ["--num_envs=16", "--num-steps=50", "--update_epochs=8", "--num_minibatches=8",
                 "--total_timesteps=24000", "--seed=1", "--eval_freq=5"]:
        assert flag in command
    own = script.baseline_command(script.parse_args([]), 3, tmp_path)
    assert "--run-baseline" in own and "--seed=3" in own and f"--out={tmp_path}" in own


def test_stdout_curve_pairs_each_eval_with_the_steps_before_it():
    script = load_script("race_maniskill_baseline")
    lines = [(100.0, "Epoch: 1, global_step=0\n"), (101.0, "Evaluating\n"), (102.0, "eval_success_once_mean=0.0\n"),
             (130.0, "Epoch: 21, global_step=16000\n"), (140.0, "eval_return_mean=3.2\n"),
             (141.0, "eval_success_once_mean=0.625\n")]
    assert script.stdout_curve(lines, 100.0) == [
        {"env_steps": 0, "seconds": 2.0, "success_once": 0.0},
        {"env_steps": 16000, "seconds": 41.0, "success_once": 0.625},
    ]


def test_rlvla_curve_reads_eval_records_with_the_latest_env_steps(tmp_path):
    script = load_script("race_maniskill_baseline")
    records = [{"step": 1, "wall_time": 10.0, "perf/total_env_steps": 800},
               {"step": 1, "wall_time": 12.0, "eval/success_once": 0.25},
               {"step": 2, "wall_time": 15.0, "perf/total_env_steps": 1600}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n{half a line")
    assert script.rlvla_curve(path, 2.0) == [{"env_steps": 800, "seconds": 10.0, "success_once": 0.25}]


def test_summary_and_median_count_a_miss_as_late():
    script = load_script("race_maniskill_baseline")
    curves = [[(8000, 60, 0.2), (16000, 120, 0.6), (24000, 180, 0.9)], [(8000, 50, 0.5), (16000, 100, 0.85)],
              [(8000, 70, 0.1), (16000, 140, 0.3)]]
    rows = [script.summarize({"side": "rlvla", "seed": i, "env_steps_per_s": 100.0,
                              "curve": [{"env_steps": s, "seconds": t, "success_once": y} for s, t, y in c]})
            for i, c in enumerate(curves)]
    assert (rows[0]["steps@0.5"], rows[0]["steps@0.8"], rows[0]["min@0.8"]) == (16000, 24000, 3.0)
    assert rows[2]["steps@0.8"] is None and rows[2]["final"] == 0.3
    median = script.median_row(rows, "rlvla")
    assert median["steps@0.8"] == 24000  # median of 24000, 16000 and a miss (infinitely late)
    assert median["steps@0.5"] == 16000 and median["final"] == 0.85


@pytest.mark.parametrize("seed", [0, 1])
def test_the_baseline_gae_agrees_with_the_library(seed):
    script = load_script("race_maniskill_baseline")
    gen = torch.Generator().manual_seed(seed)
    rewards, values = torch.rand(50, 16, generator=gen), torch.rand(50, 16, generator=gen)
    dones = torch.rand(50, 16, generator=gen) < 0.05
    finals = torch.rand(50, 16, generator=gen) * dones
    last = torch.rand(16, generator=gen)
    next_values = torch.cat([values[1:], last.unsqueeze(0)])
    real = (~dones).float() * next_values + finals
    ours = script.finite_horizon_advantages(rewards, values, dones, real, 0.9, 0.8)
    # ppo_cpu.py bootstraps every done: the library's bootstrap_type `always` with the dones as terminations
    lib, _ = finite_horizon_gae(rewards, values, last, dones, torch.zeros_like(dones), finals, 0.8, 0.9, "always")
    torch.testing.assert_close(ours, lib)

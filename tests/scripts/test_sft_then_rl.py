"""scripts/sft_then_rl.py end to end at toy size on the CPU: real demos, SFT, PPO and GRPO from the SFT
checkpoint (`rlvla train` loading `actor.model.model_path`), three evaluations and the report."""

import json
from pathlib import Path

import pytest
from script_loader import load_script

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pipeline_runs_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    script = load_script("sft_then_rl")
    tiny = ["env.train.total_num_envs=4", "env.train.max_episode_steps=8", "env.train.max_steps_per_rollout_epoch=8",
            "env.eval.total_num_envs=2", "actor.global_batch_size=16", "actor.micro_batch_size=8"]
    args = ["--out", str(tmp_path), "--demos", "2", "--sft-epochs", "1", "--rl-epochs", "1", "--eval-episodes", "2",
            "--workers", "1", "--extra", *tiny]
    # a budget too small for any stage stops at once, resumably
    assert script.main([*args, "--time-budget-s", "1"]) == 0
    assert not list((tmp_path / "stages").iterdir())
    assert script.main([*args, "--time-budget-s", "900"]) == 0
    stages = sorted(p.stem for p in (tmp_path / "stages").iterdir())
    assert stages == ["collect", "eval_base", "eval_grpo", "eval_ppo", "grpo", "ppo", "sft"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"base", "ppo", "grpo"}
    assert results["ppo"]["eval_sets"]["eval"]["average"]["episodes"] == 2
    table = (tmp_path / "results.md").read_text()
    assert "| grpo | eval |" in table and (tmp_path / "curves.png").stat().st_size > 1000
    # the RL runs started from the SFT policy
    ppo_config = (tmp_path / "ppo.log").read_text()
    assert "run finished" in ppo_config

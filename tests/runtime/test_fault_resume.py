"""Issue 19 item 4: a run stopped at step N and resumed from its checkpoint logs exactly the metrics of the
uninterrupted run at N+1 and N+2 (CPU, env workers, PPO and GRPO): same seeds, env states, RNG streams."""

from __future__ import annotations

import json

import pytest
from runtime_configs import small_config_dict
from tiny_policy import tiny_factory

from rlvla_cli.commands.train import hardware_placement
from rlvla_cli.config.loader import load_config_dict
from rlvla_cli.runtime.runner import Runner

SKIP = ("time/", "perf/env_steps_per_s", "perf/actor_mfu", "wall_time")
GRPO = {"adv_type": "grpo", "loss_type": "actor", "group_size": 4}


def _run(run_dir, steps: int, algorithm: dict | None, *overrides: str) -> list[dict]:
    data = small_config_dict(run_dir, steps=steps)
    if algorithm:  # as tests/runtime/test_multinode.py: groups share resets, no value head
        data["algorithm"].update(algorithm)
        data["env"]["train"].update(group_size=algorithm["group_size"], auto_reset=False)
        data["actor"]["model"]["add_value_head"] = False
    cfg = load_config_dict(data, list(overrides))
    placement, offload = hardware_placement(cfg)
    result = Runner(cfg, placement, offload, factory=tiny_factory, console=False).run()
    assert result.status == "finished" and result.global_step == steps
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algorithm", [None, GRPO], ids=["ppo", "grpo"])
def test_resume_matches_the_uninterrupted_run(tmp_path, algorithm):
    straight = _run(tmp_path / "straight", 4, algorithm)
    _run(tmp_path / "split", 2, algorithm)  # stops at step 2 with its end-of-run checkpoint
    resumed = _run(tmp_path / "split", 4, algorithm, "runner.resume_dir=auto")[2:]
    assert [r["step"] for r in resumed] == [3, 4]
    for got, want in zip(resumed, straight[2:], strict=True):
        names = {k for k in want if not k.startswith(SKIP)}
        assert names == {k for k in got if not k.startswith(SKIP)}
        assert {"env/return", "train/actor/policy_loss", "train/actor/grad_norm"} <= names
        mismatched = {k: (got[k], want[k]) for k in sorted(names) if got[k] != want[k]}
        assert not mismatched, mismatched

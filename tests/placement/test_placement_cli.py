"""`rlvla plan-gpus` end to end: the table, JSON, the 24 GiB refusal, and flag errors (exit code 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from rlvla_cli.commands.plan_gpus import parse_gpu_mem, run_plan_gpus
from rlvla_cli.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
OFT = ROOT / "configs" / "maniskill_ppo_openvlaoft.yaml"
QUICKSTART = ROOT / "configs" / "maniskill_ppo_openvlaoft_quickstart.yaml"


def _rlvla(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "rlvla_cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def test_plan_gpus_prints_the_table_for_the_shipped_oft_config():
    proc = _rlvla("plan-gpus", "--config", str(OFT), "--gpus", "8")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "node 0" in out and "training" in out and "rollout" in out and "peak" in out
    assert "mode: hybrid" in out and "actor data-parallel 8" in out
    assert out.count("GiB") >= 16


def test_plan_gpus_refuses_full_finetune_on_24gib_with_numbers_and_suggestions():
    proc = _rlvla("plan-gpus", "--config", str(QUICKSTART), "--gpus", "1", "--gpu-mem", "24GiB",
                  "actor.model.is_lora=false", "actor.model.lora_path=null")
    assert proc.returncode == 2
    assert "node 0 (global GPU ranks 0-0) - 24.0 GiB per GPU" in proc.stdout  # the table is printed too
    assert "out of memory" in proc.stdout and "more than the 24.0 GiB" in proc.stdout
    assert "suggestions:" in proc.stdout and "actor.model.is_lora=true" in proc.stdout


def test_plan_gpus_lora_with_offload_fits_24gib(capsys):
    run_plan_gpus(QUICKSTART, 1, None, "24GiB", False, [])
    out = capsys.readouterr().out
    assert "plan OK" in out and "actor offload: yes (needed)" in out and "%" in out


def test_plan_gpus_json(capsys):
    run_plan_gpus(OFT, 8, 1, "80GiB", True, [])
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["gpu_mem_bytes"] == 80 * 1024**3 and len(data["gpus"]) == 8


def test_plan_gpus_refusal_exits_2_in_json_too(capsys):
    with pytest.raises(typer.Exit) as info:
        run_plan_gpus(QUICKSTART, 1, None, "24GB", True, ["actor.model.is_lora=false", "actor.model.lora_path=null"])
    assert info.value.exit_code == 2
    data = json.loads(capsys.readouterr().out)
    assert not data["ok"] and data["refusals"][0]["kind"] == "memory" and data["suggestions"]


@pytest.mark.parametrize("text", ["80", "lots", "80 GiBs", "-4GiB"])
def test_bad_gpu_mem_is_a_user_error(text):
    if text == "80":
        assert parse_gpu_mem(text) == 80  # plain bytes are accepted
        return
    with pytest.raises(UserError, match="--gpu-mem"):
        parse_gpu_mem(text)


def test_bad_gpu_mem_exits_2_through_the_cli():
    proc = _rlvla("plan-gpus", "--config", str(OFT), "--gpus", "8", "--gpu-mem", "eighty")
    assert proc.returncode == 2 and "--gpu-mem" in proc.stderr and "Traceback" not in proc.stderr


def test_no_gpus_and_no_flag_asks_for_gpus(monkeypatch):
    import rlvla_cli.placement.planner as planner

    monkeypatch.setattr(planner, "detect_gpus", lambda: (0, None))
    with pytest.raises(UserError, match="--gpus"):
        run_plan_gpus(OFT, None, None, None, False, [])


def test_placement_errors_are_user_errors():
    with pytest.raises(UserError, match="cluster.component_placement.actor"):
        run_plan_gpus(OFT, 4, None, None, False, [])  # actor: 0-7 on 4 GPUs: rank out of range


def test_plan_gpus_two_nodes_shows_each_node_and_refuses_env_without_rollout():
    hosts = ["cluster.num_nodes=2", "cluster.hosts=[node-a, node-b]"]
    proc = _rlvla("plan-gpus", "--config", str(OFT), "--gpus", "8", "--nodes", "2", "--gpu-mem", "80GiB", *hosts,
                  "cluster.component_placement={actor: 0-15, env: 0-15, rollout: 0-15}")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # RLinf's 2 x 8 placement: every component everywhere
    assert "node 0 (global GPU ranks 0-7)" in proc.stdout and "node 1 (global GPU ranks 8-15)" in proc.stdout
    assert "node 1: actor, env, rollout, peak" in proc.stdout  # the per-node summary line
    proc = _rlvla("plan-gpus", "--config", str(OFT), "--gpus", "8", *hosts,
                  "cluster.component_placement={actor: 0-15, env: 0-7, rollout: 8-15}")
    assert proc.returncode == 2
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "cluster.component_placement" in text and "node 0 (GPU ranks 0-7) runs env but no rollout" in text

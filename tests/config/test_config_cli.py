"""`rlvla config show / validate / schema` through the real CLI (exit codes, no tracebacks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rlvla_cli.cli import app
from rlvla_cli.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def rlvla(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvla_cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_validate_ok():
    result = rlvla("config", "validate", "configs/maniskill_ppo_openvlaoft.yaml", "actor.optim.lr=2e-4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK") and "openvla_oft" in result.stdout


def test_bad_override_exits_2_with_did_you_mean():
    result = rlvla("config", "validate", "configs/maniskill_ppo_openvlaoft.yaml", "actor.model.lora_rnak=8")
    assert result.returncode == 2
    assert "did you mean `lora_rank`" in result.stderr and "actor.model.lora_rnak" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_files_exit_2(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("runner:\n  max_epochs: [1\n")
    for args in (["config", "validate", str(broken)], ["config", "show", str(tmp_path / "missing.yaml")]):
        result = rlvla(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "error:" in result.stderr


def test_schema_is_json():
    result = CliRunner().invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == {"cluster", "runner", "algorithm", "env", "rollout", "actor", "sft"}


def test_show_prints_reloadable_yaml():
    result = CliRunner().invoke(app, ["config", "show", "configs/builtin_grpo_small.yaml", "runner.seed=3"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["runner"]["seed"] == 3 and data["algorithm"]["adv_type"] == "grpo"


def test_cli_runner_surfaces_config_error():
    """Without main(), the UserError reaches the caller: main() is what turns it into exit code 2."""
    result = CliRunner().invoke(app, ["config", "validate", "configs/builtin_ppo_small.yaml", "runner.seed=-1"])
    assert isinstance(result.exception, ConfigError)
    assert "runner.seed" in str(result.exception)

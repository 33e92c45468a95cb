"""build.py and policy.py no longer import each other (issue 14 item 4): saving lives in saving.py."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path


def imported_modules(module: str) -> set[str]:
    """Every module named by an import statement anywhere in ``module``'s source (top level or inside functions)."""
    source = Path(importlib.util.find_spec(module).origin).read_text()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_policy_and_build_do_not_import_each_other():
    assert "rlvla_cli.models.openpi.build" not in imported_modules("rlvla_cli.models.openpi.policy")
    assert "rlvla_cli.models.openpi.policy" in imported_modules("rlvla_cli.models.openpi.build")
    saving = imported_modules("rlvla_cli.models.openpi.saving")
    assert "rlvla_cli.models.openpi.build" not in saving


def test_saving_is_what_policy_calls(tmp_path):
    from rlvla_cli.models.openpi import build, policy, saving

    assert policy.save_openpi_policy is saving.save_openpi_policy is build.save_openpi_policy

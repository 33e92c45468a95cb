"""Regenerate the key reference in docs/config.md from the config schema.

Usage: python scripts/gen_config_docs.py [--check]   (--check exits 1 when the file is out of date)
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlvla_cli.config.docs import render_reference, splice
from rlvla_cli.config.schema import RootConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def main() -> int:
    current = DOC.read_text(encoding="utf-8")
    updated = splice(current, render_reference(RootConfig))
    if "--check" in sys.argv:
        if updated != current:
            print(f"{DOC} is out of date: run python scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(updated, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Import a file under scripts/ as a module (scripts are not a package)."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str):
    """``scripts/<name>.py`` as module ``name``, registered in ``sys.modules`` (spawned children unpickle their
    targets by module name)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

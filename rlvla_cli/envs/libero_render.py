"""Choose MuJoCo's offscreen renderer for LIBERO (robosuite reads ``MUJOCO_GL`` when it is first imported).

EGL works on the GPU machine (NVIDIA's EGL) and on the CPU build machines (Mesa's EGL); OSMesa needs the OSMesa
library, which is absent on the build machines (``glGetError`` on a None platform, measured 2026-12-03). Each
candidate is probed in a child process (creating a context in this process would fix the choice for good), once
per process.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

from rlvla_cli.errors import ConfigError

BACKENDS = ("egl", "osmesa")
_PROBE = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"
_KEY = "env.*.init_params.render_backend"


@functools.cache
def probe_backend(backend: str) -> str | None:
    """None when MuJoCo can create and use a ``backend`` context here, else the error's last line."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "the probe did not finish in 120 s"
    if run.returncode == 0:
        return None
    lines = (run.stderr or run.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {run.returncode}"


def choose_backend(requested: str) -> str:
    """The MUJOCO_GL value to use: the environment's own, the requested one, or (auto) the first that works.

    Raises ConfigError naming the key when the requested backend (or, for auto, every backend) fails.
    """
    preset = os.environ.get("MUJOCO_GL")
    if preset:
        return preset
    candidates = BACKENDS if requested == "auto" else (requested,)
    failures = {}
    for backend in candidates:
        error = probe_backend(backend)
        if error is None:
            return backend
        failures[backend] = error
    detail = "; ".join(f"{name}: {error}" for name, error in failures.items())
    raise ConfigError(
        f"no MuJoCo renderer works on this machine for LIBERO's cameras ({detail})",
        key=_KEY,
        fix="use render_backend: auto, or install a renderer: EGL (libegl1 with a GPU driver, or Mesa's "
        "libegl-mesa0 on a CPU machine) or OSMesa (libosmesa6); MUJOCO_GL in the environment overrides the key",
    )


def export_backend(backend: str) -> None:
    """Point MuJoCo, robosuite and PyOpenGL at ``backend`` (before robosuite is imported)."""
    os.environ.setdefault("MUJOCO_GL", backend)
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

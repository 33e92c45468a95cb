"""Shared test settings: keep torch on one thread so parallel CI cores stay predictable."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")
os.environ.setdefault("SWANLAB_MODE", "disabled")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pickcube_demos(tmp_path_factory):
    """Two real PickCube-v1 demonstrations (motion planner + replay, 64x64), collected once per session."""
    from rlvla_cli.demos.collect import CollectSettings, collect

    out = tmp_path_factory.mktemp("pickcube_demos")
    meta = collect(CollectSettings("PickCube-v1", num_demos=2, out_dir=out, workers=1, image_size=64))
    return out, meta


@pytest.fixture(scope="module")
def single_rank_group():
    """torch.distributed with one gloo rank (what the DeepSpeed trainer needs), torn down after the module."""
    from rlvla_cli.runtime.launcher import init_distributed, shutdown_distributed

    init_distributed(0, 1, "cpu")
    yield
    shutdown_distributed()

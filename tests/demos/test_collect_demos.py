"""collect-demos on the CPU: the real ManiSkill planner, replay into pd_ee_delta_pose, a parquet dataset."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rlvla_cli.demos.collect import CollectSettings, collect
from rlvla_cli.demos.planner import check_planner_task
from rlvla_cli.errors import UserError


@pytest.fixture
def demos(pickcube_demos):
    return pickcube_demos


def test_dataset_reads_back_with_datasets(demos):
    from datasets import load_dataset

    out, meta = demos
    data = load_dataset("parquet", data_files=f"{out}/data/*.parquet", split="train")
    assert meta["num_episodes"] == 2
    assert len(data) == meta["num_transitions"]
    row = data[0]
    image = np.asarray(row["main_image"])
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert len(row["action"]) == 7  # pd_ee_delta_pose: xyz, rpy, gripper
    assert len(row["state"]) == 9  # Panda qpos
    assert "cube" in row["task_description"].lower()
    # one terminal row per episode
    assert sum(data["is_last"]) == 2


def test_statistics_and_meta(demos):
    out, meta = demos
    stats = json.loads((out / "dataset_statistics.json").read_text())[meta["unnorm_key"]]
    q01, q99 = np.array(stats["action"]["q01"]), np.array(stats["action"]["q99"])
    assert q01.shape == (7,) and np.all(q01 <= q99)
    assert stats["num_trajectories"] == 2
    saved = json.loads((out / "meta.json").read_text())
    assert saved["seeds"] == meta["seeds"] and saved["control_mode"] == "pd_ee_delta_pose"


def test_resume_skips_finished_seeds(demos):
    out, meta = demos
    before = sorted(p.name for p in (out / "data").glob("*.parquet"))
    again = collect(CollectSettings("PickCube-v1", num_demos=2, out_dir=out, workers=1, image_size=64))
    assert again["seeds"] == meta["seeds"]
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == before


def test_task_without_planner_is_refused():
    with pytest.raises(UserError, match="PickCube-v1"):
        check_planner_task("PickCub-v1")


def test_cli_exit_code_for_unknown_task(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlvla_cli", "collect-demos", "--env", "OpenCabinetDrawer-v1", "-n", "1",
         "--out", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "no motion-planning solution" in proc.stderr and "Traceback" not in proc.stderr

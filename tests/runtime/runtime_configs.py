"""Small configs for runtime tests: the built-in quickstart shrunk to seconds per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import yaml

from rlvla_cli.config.loader import builtin_preset_path, load_config_dict

PLACEMENTS = {
    "collocated": ({"actor,env,rollout": "all"}, 1),
    "disaggregated": ({"actor": "0", "env": "1", "rollout": "2"}, 3),
    "hybrid": ({"env": "0", "rollout": "1", "actor": "0-1"}, 2),
    "two_ranks": ({"actor": "0-1", "env": "0-1", "rollout": "0"}, 2),
}


def small_config_dict(run_dir: Path, placement: str = "collocated", steps: int = 2, **env: Any) -> dict:
    """The quickstart with 8 envs, T = 4 chunk steps, 32x32 images, one update epoch, no eval."""
    data = yaml.safe_load(builtin_preset_path().read_text())
    component_placement, slots = PLACEMENTS[placement]
    data["cluster"].update(component_placement=component_placement, num_gpus_per_node=slots)
    data["runner"].update(max_epochs=steps, val_check_interval=-1, save_interval=-1, output_dir=str(run_dir))
    data["runner"]["logger"]["logger_backends"] = []
    data["env"]["train"].update({"total_num_envs": 8, "max_episode_steps": 8, "max_steps_per_rollout_epoch": 8, **env})
    data["env"]["train"]["init_params"]["image_size"] = 32
    data["env"]["eval"].update(total_num_envs=4)
    data["actor"].update(micro_batch_size=8, global_batch_size=16)
    data["actor"]["model"].update(image_size=32, num_action_chunks=2)  # T = 4 chunk steps of 2 actions
    data["algorithm"]["update_epoch"] = 1
    return data


def small_config(run_dir: Path, placement: str = "collocated", steps: int = 2, overrides: tuple = ()) -> Any:
    return load_config_dict(small_config_dict(run_dir, placement, steps), list(overrides))


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def live_children() -> set[int]:
    """Live child processes, without multiprocessing's resource tracker (one per interpreter, by design)."""
    out = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(proc.cmdline()):
                out.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return out

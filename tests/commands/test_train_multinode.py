"""`rlvla train` on a multi-node config started without DeepSpeed's launcher: refused, with the command to run."""

from __future__ import annotations

import shlex

import pytest

from rlvla_cli.commands.train import run_train
from rlvla_cli.errors import UserError


def test_multinode_run_without_the_launcher_prints_the_launch_command(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    overrides = ["cluster.num_nodes=2", "cluster.hosts=[node-a, node-b]", "cluster.num_gpus_per_node=8"]
    with pytest.raises(UserError, match="DeepSpeed's launcher") as info:
        run_train(None, overrides)
    assert info.value.key == "cluster.num_nodes"
    command = shlex.split(info.value.fix.split("run on the first node: ", 1)[1])
    assert command[:3] == ["deepspeed", "--hostfile", "hostfile"] and "--no_local_rank" in command
    assert command[command.index("--num_nodes") + 1] == "2" and command[command.index("--num_gpus") + 1] == "8"
    assert command[command.index("--master_addr") + 1] == "node-a"
    assert command[-len(overrides):] == overrides

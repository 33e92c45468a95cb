"""`rlvla train` on a multi-host config started outside torchrun: refused, with each node's torchrun command and a
Slurm recipe (runtime/distributed/launch.py)."""

from __future__ import annotations

import shlex

import pytest

from rlvla_cli.commands.train import run_train
from rlvla_cli.errors import UserError


def test_multinode_run_without_the_launcher_prints_each_nodes_command(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    overrides = ["cluster.num_nodes=2", "cluster.hosts=[node-a, node-b]", "cluster.num_gpus_per_node=8"]
    with pytest.raises(UserError, match="one node driver per machine, started by torchrun") as info:
        run_train(None, overrides)
    assert info.value.key == "cluster.hosts"
    node_b = info.value.fix.split("on node-b: ", 1)[1].split(" (or from a Slurm", 1)[0]
    command = shlex.split(node_b)
    assert command[0] == "torchrun" and command[command.index("--node-rank") + 1] == "1"
    assert command[command.index("--nnodes") + 1] == "2" and command[command.index("--nproc-per-node") + 1] == "1"
    assert command[command.index("--master-addr") + 1] == "node-a"
    assert command[-len(overrides):] == overrides
    assert "srun --nodes 2 --ntasks-per-node 1" in info.value.fix

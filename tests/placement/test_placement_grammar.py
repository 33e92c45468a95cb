"""Placement grammar and resolution: every example of RLinf's placement docs (``cluster.component_placement``),
modes, CPU mode, and bad strings."""

from __future__ import annotations

import pytest

from rlvla_cli.errors import ConfigError
from rlvla_cli.placement.grammar import parse_component_placement, parse_rank_list
from rlvla_cli.placement.resolve import classify_mode, resolve_placement

# (placement, nodes, gpus per node, expected GPU ranks per component, processes per component, mode)
DESIGN_EXAMPLES = [
    ({"actor,env,rollout": "0-0"}, 1, 1, {"actor": [0], "env": [0], "rollout": [0]}, None, "collocated"),
    ({"actor": "0-3", "env": 4, "rollout": 5}, 1, 8,
     {"actor": [0, 1, 2, 3], "env": [4], "rollout": [5]}, None, "disaggregated"),
    ({"env,rollout": "4-5", "actor": "0-3"}, 1, 8,
     {"env": [4, 5], "rollout": [4, 5], "actor": [0, 1, 2, 3]}, None, "hybrid"),
    ({"env,rollout,actor": "all"}, 1, 8, {c: list(range(8)) for c in ("env", "rollout", "actor")}, None,
     "collocated"),
    ({"env": "0-3", "rollout": "4-7", "actor": "0-7"}, 1, 8,
     {"env": [0, 1, 2, 3], "rollout": [4, 5, 6, 7], "actor": list(range(8))}, None, "hybrid"),
    ({"env": "0-1", "rollout": "2-5", "actor": "6-7"}, 1, 8,
     {"env": [0, 1], "rollout": [2, 3, 4, 5], "actor": [6, 7]}, None, "disaggregated"),
    ({"env": "0-7", "rollout": "8-15", "actor": "0-15"}, 2, 8,
     {"env": list(range(8)), "rollout": list(range(8, 16)), "actor": list(range(16))}, None, "hybrid"),
    ({"env": "0-3", "rollout": "4-7", "actor": "8-15"}, 2, 8,
     {"env": [0, 1, 2, 3], "rollout": [4, 5, 6, 7], "actor": list(range(8, 16))}, None, "disaggregated"),
    ({"actor": "0-3:0-7", "env,rollout": "4-7"}, 1, 8,
     {"actor": [0, 1, 2, 3], "env": [4, 5, 6, 7], "rollout": [4, 5, 6, 7]}, {"actor": 8}, "hybrid"),
]


@pytest.mark.parametrize("placement,nodes,gpus,ranks,procs,mode", DESIGN_EXAMPLES)
def test_design_table_examples_resolve(placement, nodes, gpus, ranks, procs, mode):
    resolved = resolve_placement(placement, nodes, gpus)
    assert resolved.mode == mode
    for name, expected in ranks.items():
        comp = resolved.components[name]
        assert list(comp.gpu_ranks) == expected
        assert comp.num_processes == (procs or {}).get(name, len(expected))
    assert resolved.actor_dp_size == resolved.components["actor"].num_processes
    assert resolved.env_workers == resolved.components["env"].num_processes
    assert resolved.rollout_workers == resolved.components["rollout"].num_processes


def test_ranks_count_across_nodes():
    resolved = resolve_placement({"env": "0-7", "rollout": "8-15", "actor": "0-15"}, 2, 8)
    rollout = resolved.components["rollout"].processes
    # global rank 8 -> node 1, local GPU 0; rank 15 -> node 1, local GPU 7
    assert (rollout[0].gpu_rank, rollout[0].node, rollout[0].local_gpu, rollout[0].device) == (8, 1, 0, "cuda:0")
    assert (rollout[-1].gpu_rank, rollout[-1].node, rollout[-1].local_gpu) == (15, 1, 7)
    assert resolved.components["actor"].nodes == (0, 1)


def test_process_ranks_divide_evenly_consecutively():
    resolved = resolve_placement({"actor": "0-3:0-7", "env,rollout": "all"}, 1, 4)
    actor = resolved.components["actor"]
    # 8 processes on 4 GPUs: ranks 0,1 -> GPU 0; 2,3 -> GPU 1; ...
    assert [p.gpu_rank for p in actor.processes] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert actor.processes_per_gpu == 2
    assert resolved.actor_dp_size == 8


def test_lists_and_single_ints():
    assert parse_rank_list("0,2,4-5", 8, key="env") == [0, 2, 4, 5]
    assert parse_rank_list("3", 8, key="env") == [3]
    assert parse_rank_list(" all ", 3, key="env") == [0, 1, 2]
    resolved = resolve_placement({"env": "0,2", "rollout": "1,3", "actor": "0-3"}, 1, 4)
    assert resolved.mode == "hybrid"


def test_cpu_mode_same_resolution_cpu_devices():
    gpu = resolve_placement({"env": "0-1", "rollout": "2-3", "actor": "0-3"}, 1, 4)
    cpu = resolve_placement({"env": "0-1", "rollout": "2-3", "actor": "0-3"}, 1, 4, cpu_mode=True)
    assert cpu.cpu_mode and {p.device for c in cpu.components.values() for p in c.processes} == {"cpu"}
    assert [c.gpu_ranks for c in cpu.components.values()] == [c.gpu_ranks for c in gpu.components.values()]
    assert cpu.mode == gpu.mode == "hybrid"


def test_classify_mode():
    assert classify_mode([{0, 1}, {0, 1}, {0, 1}]) == "collocated"
    assert classify_mode([{0}, {1}, {2, 3}]) == "disaggregated"
    assert classify_mode([{0, 1}, {1, 2}, {3}]) == "hybrid"


def test_idle_gpus_warn():
    resolved = resolve_placement({"actor,env,rollout": "0-0"}, 1, 8)
    assert resolved.warnings and "7 of 8 GPUs" in resolved.warnings[0]


BAD = [
    # (placement, nodes, gpus, key named in the message, words the message must contain)
    ({"actor,env,rolout": "all"}, 1, 8, "cluster.component_placement.actor,env,rolout", ["unknown", "rollout"]),
    ({"actor,env,rollout": "0-8"}, 1, 8, "cluster.component_placement.actor,env,rollout", ["out of range", "8"]),
    ({"env": "0-7", "rollout": "8-16", "actor": "all"}, 2, 8, "cluster.component_placement.rollout",
     ["out of range", "16"]),
    ({"env,rollout": "0-3", "rollout,actor": "4-7"}, 1, 8, "cluster.component_placement.rollout,actor",
     ["placed twice"]),
    ({"env,env": "0", "rollout,actor": "1"}, 1, 8, "cluster.component_placement.env,env", ["twice"]),
    ({"env,rollout": "0-3"}, 1, 8, "cluster.component_placement", ["actor", "no GPU"]),
    ({}, 1, 8, "cluster.component_placement", ["no component"]),
    ({"actor,env,rollout": "0-"}, 1, 8, "cluster.component_placement.actor,env,rollout", ["cannot read"]),
    ({"actor,env,rollout": "a-b"}, 1, 8, "cluster.component_placement.actor,env,rollout", ["cannot read"]),
    ({"actor,env,rollout": "3-1"}, 1, 8, "cluster.component_placement.actor,env,rollout", ["backwards"]),
    ({"actor,env,rollout": ""}, 1, 8, "cluster.component_placement.actor,env,rollout", ["no GPU ranks"]),
    ({"actor,env,rollout": "0,0"}, 1, 8, "cluster.component_placement.actor,env,rollout", ["twice"]),
    ({"actor": "0-3:0-6", "env,rollout": "4"}, 1, 8, "cluster.component_placement.actor",
     ["7 processes", "4 GPUs", "0-3:0-7"]),
    ({"actor": "0-3:1-8", "env,rollout": "4"}, 1, 8, "cluster.component_placement.actor", ["0..n-1"]),
    ({"actor": "0-3:0-7:1", "env,rollout": "4"}, 1, 8, "cluster.component_placement.actor", ["more than one"]),
    ({"actor": "0-3:all", "env,rollout": "4"}, 1, 8, "cluster.component_placement.actor", ["cannot be `all`"]),
    ({"actor,env,rollout": "all"}, 1, 0, "cluster.num_gpus_per_node", ["at least 1"]),
    ({"actor,env,rollout": 1.5}, 1, 8, "cluster.component_placement.actor,env,rollout", ["float"]),
]


@pytest.mark.parametrize("placement,nodes,gpus,key,words", BAD)
def test_bad_placements_name_the_key_and_fix(placement, nodes, gpus, key, words):
    with pytest.raises(ConfigError) as info:
        resolve_placement(placement, nodes, gpus)
    text = str(info.value)
    assert f"`{key}`" in text
    assert "Fix:" in text
    for word in words:
        assert word in text


def test_did_you_mean_on_typo():
    with pytest.raises(ConfigError, match="did you mean `actor`"):
        parse_component_placement({"actr,env,rollout": "all"}, 8)


def test_result_is_in_component_order():
    specs = parse_component_placement({"actor": "0", "rollout": "1", "env": "2"}, 4)
    assert list(specs) == ["env", "rollout", "actor"]

"""Multi-node placements (RLinf's 2 x 8 recipes): per-node roles, the node rules that replaced the node-0 rule,
and per-node memory in the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvla_cli.config.loader import load_config
from rlvla_cli.placement import plan, resolve_placement
from rlvla_cli.placement.nodes import node_layout, node_problems

ROOT = Path(__file__).resolve().parents[2]
OFT = ROOT / "configs" / "maniskill_ppo_openvlaoft.yaml"
GIB = 1024**3


def _resolve(placement: dict, nodes: int = 2, gpus: int = 8):
    return resolve_placement(placement, nodes, gpus)


def test_every_component_on_both_nodes():
    """`env,rollout,actor: 0-15` on 2 x 8 (RLinf's multi-node ManiSkill / LIBERO recipes)."""
    placement = _resolve({"actor,env,rollout": "0-15"})
    assert node_problems(placement) == []
    layout = node_layout(placement)
    assert layout.world == 16 and layout.total_env_workers == 16 and layout.driver_ranks == (0, 8)
    node1 = layout.nodes[1]
    assert node1.actor_ranks == tuple(range(8, 16)) and node1.env_workers == tuple(range(8, 16))
    assert node1.actor_devices[0] == "cuda:0" and node1.rollout_devices == tuple(f"cuda:{i}" for i in range(8))
    assert layout.node_of_rank(11) is node1


def test_hybrid_per_node_and_trainer_only_node():
    # each node: env on GPUs 0-3, rollout on 4-7, actor on all 8 (RLinf's hybrid, once per node)
    placement = _resolve({"env": "0-3,8-11", "rollout": "4-7,12-15", "actor": "0-15"})
    assert node_problems(placement) == []
    layout = node_layout(placement)
    assert layout.nodes[0].env_workers == (0, 1, 2, 3) and layout.nodes[1].env_workers == (4, 5, 6, 7)
    assert layout.nodes[1].rollout_devices == ("cuda:4", "cuda:5", "cuda:6", "cuda:7")
    # node 1 trains only: allowed (its driver is a plain trainer rank that receives the weight broadcast)
    placement = _resolve({"env": "0-3", "rollout": "4-7", "actor": "0-15"})
    assert node_problems(placement) == []
    assert not node_layout(placement).nodes[1].runs_rollout


@pytest.mark.parametrize(("placement", "message"), [
    ({"env": "0-7", "rollout": "8-15", "actor": "0-15"}, "node 0 (GPU ranks 0-7) runs env but no rollout"),
    ({"env": "0-3", "rollout": "4-7", "actor": "8-15"}, "node 0 (GPU ranks 0-7) has no actor process"),
])
def test_node_rules_refuse_what_a_node_driver_cannot_run(placement, message):
    problems = node_problems(_resolve(placement))
    assert problems and problems[0][0].startswith(message)
    assert problems[0][1]  # every refusal carries a fix


def test_one_node_has_no_node_rule():
    assert node_problems(resolve_placement({"env": "0-1", "rollout": "2-5", "actor": "6-7"}, 1, 8)) == []


def test_plan_shows_memory_per_node():
    cfg = load_config(OFT, ["cluster.num_nodes=2", "cluster.hosts=[a, b]",
                            "cluster.component_placement={actor: 0-15, env: 0-15, rollout: 0-15}"])
    result = plan(cfg, 8, 2, 80 * GIB)
    assert result.ok, [r.reason for r in result.refusals]
    by_node = {node: [g for g in result.gpus if g.node == node] for node in (0, 1)}
    assert [len(gpus) for gpus in by_node.values()] == [8, 8]
    # same roles on both nodes -> the same predicted memory GPU for GPU
    assert [g.peak for g in by_node[0]] == [g.peak for g in by_node[1]]
    assert all(set(g.processes) == {"actor", "env", "rollout"} for g in result.gpus)
    gpus = result.to_dict()["gpus"]
    assert {(g["node"], g["local_gpu"]) for g in gpus} == {(n, i) for n in (0, 1) for i in range(8)}

"""scripts/vla_probe.py: the reach summary, the 2-D sine-cosine embedding (MAE's layout) and a real rollout."""

import json
import math

import torch
from script_loader import REPO, load_script


def test_reach_summary_separates_the_named_object_from_the_others():
    script = load_script("vla_probe")
    closest = torch.tensor([[0.05, 0.9, 0.8], [0.7, 0.1, 0.6], [0.5, 0.4, 0.3], [0.2, 0.08, 0.9]])
    target = torch.tensor([0, 0, 2, 1])
    summary = script.reach_summary(closest, target, torch.tensor([True, False, False, True]), radius=0.12)
    assert summary["success"] == 0.5
    assert summary["reached_target"] == 0.5  # rows 0 and 3
    assert summary["reached_other"] == 0.25  # row 1 went to object 1 instead of 0
    assert math.isclose(summary["median_closest_target"], 0.08, rel_tol=1e-6)  # torch's median: the lower middle value


def test_sincos_matches_maes_layout():
    # facebookresearch/mae util/pos_embed.py get_2d_sincos_pos_embed: channels [sin(w), cos(w), sin(h), cos(h)],
    # each over D/4 frequencies omega_i = 1 / 10000^(i / (D/4)); grid position (h, w) flattened row-major.
    script = load_script("vla_probe")
    embed = script.sincos_2d(16, 8)
    h, w = 1, 2
    omega = torch.tensor([1.0, 0.01])
    expected = torch.cat([(w * omega).sin(), (w * omega).cos(), (h * omega).sin(), (h * omega).cos()])
    assert torch.allclose(embed[h * 4 + w], expected)


def test_where_rolls_out_a_saved_policy(tmp_path):
    from rlvla_cli.config.loader import load_config
    from rlvla_cli.models.registry import build_policy

    script = load_script("vla_probe")
    config = str(REPO / "configs" / "builtin_ppo_small.yaml")
    torch.manual_seed(0)
    build_policy(load_config(config, []).actor.model).save_pretrained(tmp_path / "policy")
    out = tmp_path / "where.json"
    assert script.main(["where", "--config", config, "--policy", str(tmp_path / "policy"), "--episodes", "12",
                        "--envs", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 12 and 0.0 <= result["reached_target"] <= 1.0
    assert result["median_closest_target"] > 0.0 and "machine" in result

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


def test_projector_spread_reads_the_oft_vision_path_only(tmp_path):
    from rlvla_cli.config.loader import load_config
    from rlvla_cli.demos.builtin_expert import BuiltinCollectSettings, collect_builtin
    from rlvla_cli.models.registry import build_policy
    from rlvla_cli.sft.data import dataset_statistics, load_demos

    script = load_script("vla_probe")
    collect_builtin(BuiltinCollectSettings(num_demos=4, out_dir=tmp_path, image_size=64, action_noise=0.1))
    demos = load_demos(tmp_path, num_action_chunks=4)
    cfg = load_config("configs/builtin_sft_openvla_oft.yaml", [f"sft.dataset_path={tmp_path}", "actor.model.size=tiny"])
    torch.manual_seed(0)
    oft = build_policy(cfg.actor.model)
    oft.set_dataset_statistics(*dataset_statistics(tmp_path, None))
    spread = script.projector_spread(oft, demos, samples=8)
    assert spread["projector_norm"] > 0.0 and 0.0 < spread["projector_spread"] < 1.0  # different scenes differ
    same = script.projector_spread(oft, demos.select(torch.zeros(8, dtype=torch.long)), samples=8)
    assert same["projector_spread"] < 1e-6  # one image eight times: no spread (float rounding only)
    small = build_policy(load_config(str(REPO / "configs" / "builtin_ppo_small.yaml"), []).actor.model)
    assert script.projector_spread(small, demos) == {}


def test_bad_input_is_one_paragraph_and_exit_2(tmp_path, capsys):
    script = load_script("vla_probe")
    config = str(REPO / "configs" / "builtin_ppo_small.yaml")
    assert script.main(["where", "--config", config, "--policy", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
    maniskill = str(REPO / "configs" / "maniskill_ppo_small_pushcube_state.yaml")
    assert script.main(["where", "--config", maniskill, "--policy", str(tmp_path)]) == 2
    assert "env.eval.env_type" in capsys.readouterr().err

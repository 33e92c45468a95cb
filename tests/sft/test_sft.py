"""`rlvla sft` on real PickCube demonstrations: the small policy, a tiny OpenVLA-OFT and a tiny pi0."""

import json

import numpy as np
import pytest
import torch

from rlvla_cli.config.loader import load_config
from rlvla_cli.errors import ConfigError
from rlvla_cli.sft.data import action_chunks, load_demos
from rlvla_cli.sft.loop import run_sft


def test_action_chunks_pad_with_the_last_action():
    actions = np.arange(6, dtype=np.float32).reshape(3, 2)  # T=3, A=2: [[0,1],[2,3],[4,5]]
    chunks, mask = action_chunks(actions, 2)
    # step 0 -> rows 0,1; step 1 -> rows 1,2; step 2 -> row 2 then padding (row 2 again)
    assert chunks.tolist() == [[[0, 1], [2, 3]], [[2, 3], [4, 5]], [[4, 5], [4, 5]]]
    assert mask.tolist() == [[True, True], [True, True], [True, False]]


def test_load_demos_shapes(pickcube_demos):
    out, meta = pickcube_demos
    demos = load_demos(out, num_action_chunks=3)
    n = meta["num_transitions"]
    assert demos.main_images.shape == (n, 64, 64, 3) and demos.main_images.dtype == torch.uint8
    assert demos.states.shape == (n, 9) and demos.actions.shape == (n, 3, 7) and demos.mask.shape == (n, 3)
    assert len(demos.task_descriptions) == n
    assert load_demos(out, 1, max_demos=1).actions.shape[0] < n


def _cfg(demo_dir, tmp_path, *extra):
    return load_config("configs/maniskill_sft_small.yaml", [
        f"sft.dataset_path={demo_dir}", "sft.num_epochs=1", "sft.max_steps=2", "sft.eval_episodes=0",
        f"runner.output_dir={tmp_path / 'run'}", "actor.global_batch_size=32", "actor.micro_batch_size=16",
        "env.train.max_steps_per_rollout_epoch=4", "env.train.max_episode_steps=4", *extra,
    ])


def test_small_policy_sft_lowers_the_loss_and_saves_a_loadable_policy(pickcube_demos, tmp_path):
    from rlvla_cli.models.registry import build_policy

    out, _ = pickcube_demos
    cfg = _cfg(out, tmp_path, "sft.num_epochs=20", "sft.max_steps=30", "actor.optim.lr=3e-3")
    result = run_sft(cfg, device="cpu", log=lambda _: None)
    losses = [r["train/sft/loss"] for r in result.history]
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    reloaded = build_policy(cfg.actor.model.model_copy(update={"model_path": str(result.policy_dir)}))
    demos = load_demos(out, 1)
    batch = demos.select(torch.arange(4))
    with torch.no_grad():
        trained = result_loss = reloaded.supervised_loss(batch.observations(), batch.actions, batch.mask)
    assert torch.isfinite(result_loss) and float(trained) < losses[0]
    summary = json.loads((result.run_dir / "sft_summary.json").read_text())
    assert summary["steps"] == 30 and summary["unnorm_key"] == "maniskill_pickcube"


@pytest.mark.parametrize("model", [
    ["model_type=openvla_oft", "size=tiny", "state_dim=9", "image_size=28", "num_action_chunks=2"],
    ["model_type=openpi", "size=tiny", "image_size=32", "num_action_chunks=2", "num_images=1"],
], ids=["openvla_oft", "pi0"])
def test_tiny_vla_sft_two_steps(pickcube_demos, tmp_path, model):
    out, _ = pickcube_demos
    overrides = [f"actor.model.{kv}" for kv in model]
    cfg = _cfg(out, tmp_path, *overrides, "actor.model.add_value_head=false", "algorithm.loss_type=actor",
               "algorithm.adv_type=grpo", "env.train.auto_reset=false",
               "algorithm.group_size=2", "env.train.group_size=2",
               "env.train.max_steps_per_rollout_epoch=4")
    result = run_sft(cfg, device="cpu", log=lambda _: None)
    assert result.steps == 2
    assert all(np.isfinite(r["train/sft/loss"]) for r in result.history)
    assert (result.policy_dir / "config.json").exists()


def test_missing_sft_section_is_a_config_error(tmp_path):
    cfg = load_config(None)
    with pytest.raises(ConfigError, match="sft"):
        run_sft(cfg, device="cpu")


def test_save_interval_keeps_intermediate_policies(pickcube_demos, tmp_path):
    out, _ = pickcube_demos
    cfg = _cfg(out, tmp_path, "sft.num_epochs=20", "sft.max_steps=4", "sft.save_interval=2")
    result = run_sft(cfg, device="cpu", log=lambda _: None)
    assert (result.run_dir / "sft_policy_step2" / "config.json").exists()
    assert not (result.run_dir / "sft_policy_step4").exists()  # the last step is the final sft_policy
    assert (result.policy_dir / "config.json").exists()

"""sft/sensitivity.py on the real small policy and built-in expert demos: an input the policy has no path for
moves the loss by exactly nothing; one it reads moves it; the flow-matching loss is compared paired."""

import pytest
import torch

from rlvla_cli.config.loader import load_config
from rlvla_cli.demos.builtin_expert import BuiltinCollectSettings, collect_builtin
from rlvla_cli.models.registry import build_policy
from rlvla_cli.sft.data import load_demos
from rlvla_cli.sft.sensitivity import derangement, describe, input_sensitivity


@pytest.fixture(scope="module")
def builtin_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin_demos")
    collect_builtin(BuiltinCollectSettings(num_demos=6, out_dir=out, image_size=32, action_noise=0.2))
    return load_demos(out, num_action_chunks=1)


def _small(*extra):
    cfg = load_config("configs/maniskill_sft_small.yaml", [
        "sft.dataset_path=unused", "actor.model.image_size=32", "actor.model.state_dim=3", *extra])
    torch.manual_seed(0)
    return build_policy(cfg.actor.model)


def test_derangement_moves_every_sample():
    for n in (2, 3, 17):
        index = derangement(n, torch.Generator().manual_seed(n))
        assert sorted(index.tolist()) == list(range(n)) and not (index == torch.arange(n)).any()


def test_an_input_without_a_path_does_not_matter_and_one_with_a_path_does(builtin_demos):
    blind = input_sensitivity(_small("actor.model.use_image=false"), builtin_demos, micro_batch_size=8)
    assert blind["image"] == 0.0 and blind["state"] != 0.0
    assert "ignores its camera" in describe(blind)
    seeing = input_sensitivity(_small(), builtin_demos, micro_batch_size=8)
    assert seeing["image"] != 0.0  # random weights read the image only faintly; training makes it count
    assert "ignores" not in describe({"loss": 1.0, "image": 0.2, "state": 0.1})


def test_flow_matching_loss_is_compared_on_the_same_noise(builtin_demos):
    cfg = load_config("configs/builtin_sft_pi0_flow_noise.yaml", [
        "actor.model.size=tiny", "actor.model.image_size=32", "actor.model.num_action_chunks=1",
        "actor.model.action_horizon=1"])
    policy = build_policy(cfg.actor.model)
    first = input_sensitivity(policy, builtin_demos, samples=16, micro_batch_size=8)
    again = input_sensitivity(policy, builtin_demos, samples=16, micro_batch_size=8)
    assert first == again  # paired: the same draws every time, so the differences are the inputs' alone


def test_a_single_step_gives_no_verdict(builtin_demos):
    one = builtin_demos.select(torch.arange(1))
    assert input_sensitivity(_small(), one) == {} and "skipped" in describe({})

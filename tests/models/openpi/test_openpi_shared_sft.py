"""A flow-noise SFT checkpoint starts flow-SDE RL (scripts/vla_learning.py's SHARED_SFT): the learned noise head,
which flow-SDE does not build, is left out; the network and the value head load."""

import torch

from rlvla_cli.config.loader import load_config
from rlvla_cli.models.registry import build_policy, load_policy


def test_flow_sde_loads_a_flow_noise_checkpoint(tmp_path, caplog):
    noise_cfg = load_config("configs/builtin_sft_pi0_flow_noise.yaml", ["actor.model.size=tiny"])
    sde_cfg = load_config("configs/builtin_ppo_pi0_flow_sde.yaml", ["actor.model.size=tiny"])
    torch.manual_seed(0)
    noise = build_policy(noise_cfg.actor.model)
    assert noise.noise_head is not None
    noise.save_pretrained(tmp_path / "sft_policy")
    sde = load_policy(sde_cfg.actor.model, tmp_path / "sft_policy")
    assert sde.noise_head is None and "noise_head not loaded" in caplog.text
    for ours, theirs in ((sde.value_head, noise.value_head), (sde.flow, noise.flow)):
        for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
            assert torch.equal(a, b), name

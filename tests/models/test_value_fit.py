"""A VLA's value head fits a return signal through the real PPO update path (issue 13).

The built-in task's observations feed tiny OpenVLA-OFT, OpenVLA and pi0 policies; the return of each
observation depends on the colour its instruction names (half the palette +1, the other half -1). The critic is
trained by ``algorithms.update_epoch`` (the ``actor_critic`` objective's Huber value loss, critic warm-up so only
the value term is optimised) and judged on *held-out* observations through ``get_values``: explained variance
must pass 0.5. A random-weight backbone carries that signal in its hidden state (the instruction tokens differ);
it does not carry the gripper-to-target distance (measured in issue 13: ridge / MLP probes on the hidden state
the value head reads give held-out R^2 < 0 for tiny OFT at 56 px), which is why PPO from random weights on the
built-in task showed explained variance 0.000 and why the CPU presets start PPO from an SFT checkpoint.

Value positions checked against RLinf (``rlinf/models/embodiment/openvla_oft/rlinf/openvla_oft_action_model.py``:
``value_head(last_hidden_state[:, -C*A-1])``, the last prompt token with the stop token dropped; pi0:
``rlinf/models/embodiment/openpi/openpi_action_model.py``, ``value_after_vlm``: the mean-pooled VLM prefix).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rlvla_cli.algorithms.batch import RolloutBatch
from rlvla_cli.algorithms.losses import explained_variance
from rlvla_cli.algorithms.update import StepResult, update_epoch
from rlvla_cli.config.algorithm import AlgorithmConfig
from rlvla_cli.config.env import BuiltinInitParams
from rlvla_cli.envs.builtin import BuiltinTabletopEnv
from rlvla_cli.envs.builtin_render import PALETTE
from rlvla_cli.envs.episode import EpisodeSettings
from rlvla_cli.models.registry import build_policy

sys.path.insert(0, str(Path(__file__).parent / "openpi"))
from openpi_helpers import tiny_config as tiny_openpi_config  # noqa: E402
from vla_helpers import tiny_cfg  # noqa: E402

GOOD_COLOURS = {name for name, _ in PALETTE[::2]}


class PlainStepper:
    """The update's step owner for this test: AdamW over the policy and value-head groups, grad-norm clipping.
    Records the value head's gradient norm at every boundary (the value loss must reach it)."""

    def __init__(self, policy, lr: float, value_lr: float, clip: float = 10.0):
        value = [p for p in policy.value_head_parameters() if p.requires_grad]
        ids = {id(p) for p in value}
        rest = [p for p in policy.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": value, "lr": value_lr}] + ([{"params": rest, "lr": lr}] if rest else [])
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
        self.value_params, self.clip, self.value_grad_norms = value, clip, []

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, boundary: bool, skip: bool) -> StepResult | None:
        if not boundary:
            return None
        grads = [p.grad.norm() for p in self.value_params if p.grad is not None]
        self.value_grad_norms.append(float(torch.stack(grads).norm()) if grads else 0.0)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(norm, False)


def scenes(num: int, seed: int, image_size: int) -> tuple[dict, torch.Tensor]:
    """Built-in task observations of ``num`` scenes and their returns ``[num]`` (+1 / -1 by named colour)."""
    env = BuiltinTabletopEnv(num, BuiltinInitParams(image_size=image_size, num_objects=3),
                             EpisodeSettings(max_episode_steps=8))
    obs, _ = env.reset(seed=seed)
    named = [PALETTE[int(env.object_colour[i, env.target[i]])][0] for i in range(num)]
    returns = torch.tensor([1.0 if c in GOOD_COLOURS else -1.0 for c in named])
    return obs, returns


def one_step_batch(policy, obs: dict, returns: torch.Tensor) -> RolloutBatch:
    """A T = 1 rollout batch of the policy's own predictions whose value targets are ``returns``."""
    out = policy.predict(obs, mode="train")
    num, chunks = returns.shape[0], out.actions.shape[1]
    flags = torch.zeros(1, num, chunks, dtype=torch.bool)
    batch = RolloutBatch(
        forward_inputs={k: v.unsqueeze(0) for k, v in out.forward_inputs.items()},
        old_logprobs=out.logprobs.unsqueeze(0), rewards=torch.zeros(1, num, chunks), terminations=flags,
        truncations=flags.clone(), loss_mask=torch.ones(1, num, dtype=torch.bool), old_values=out.values.unsqueeze(0),
    )
    batch.advantages, batch.returns = torch.zeros(1, num), returns.unsqueeze(0)
    return batch.validate()


CASES = {
    "openvla_oft": (lambda: tiny_cfg("openvla_oft", image_size=28, num_action_chunks=2, add_value_head=True), 32),
    "openvla": (lambda: tiny_cfg("openvla", image_size=28, add_value_head=True), 32),
    # pi0's default critic input, the action expert's output at the sampled denoising step, is dominated by that
    # step's noise: measured here it fits the training chains (EV 0.48) but not the same scenes with fresh noise
    # (EV -0.29 after 40 epochs). The VLM-prefix value (RLinf's ``value_after_vlm``, pi0.5 style) fits.
    "openpi": (lambda: tiny_openpi_config(add_value_head=True, value_after_vlm=True, num_images=1, action_horizon=4,
                                          num_action_chunks=2, max_token_len=32), 32),
}


@pytest.mark.parametrize("name", list(CASES))
def test_value_head_fits_instruction_dependent_returns(name):
    make_cfg, image_size = CASES[name]
    torch.manual_seed(0)
    policy = build_policy(make_cfg())
    train_obs, train_returns = scenes(96, seed=1, image_size=image_size)
    test_obs, test_returns = scenes(64, seed=2, image_size=image_size)
    with torch.no_grad():
        before = explained_variance(policy.get_values(test_obs)[:, 0], test_returns, torch.ones(64, dtype=torch.bool))
    batch = one_step_batch(policy, train_obs, train_returns)
    cfg = AlgorithmConfig(loss_type="actor_critic", value_clip=None, huber_delta=10.0)
    stepper = PlainStepper(policy, lr=1e-4, value_lr=3e-3)
    for _ in range(40):
        metrics = update_epoch(policy, batch, stepper, cfg, micro_batch_size=48, global_batch_size=96,
                               critic_warmup_active=True)
    with torch.no_grad():
        values = policy.get_values(test_obs)[:, 0]
    held_out = explained_variance(values, test_returns, torch.ones(64, dtype=torch.bool))
    assert all(n > 0 for n in stepper.value_grad_norms[1:]), "the value loss never reached the value head"
    assert abs(before) < 0.05  # the zero-initialised last layer: values start constant
    assert metrics["train/critic/explained_variance"] > 0.5
    assert held_out > 0.5, f"{name}: held-out explained variance {held_out:.3f}"

"""Does a trained policy use its inputs? The demonstration loss with one input shuffled across samples.

A VLA that learnt to ignore its camera still lowers its SFT loss (it fits the demos' average move from the
proprio state alone) and then acts blind: RL from it looks like "RL does not work". Shuffling one input across
the batch (every sample gets another sample's image, instruction or state; the rest stays) and measuring how
much the loss rises tells which inputs the policy relies on. Flow-matching losses draw noise and times, so every
evaluation starts from the same RNG state and the comparison is paired.
"""

from __future__ import annotations

from typing import Any

import torch

from rlvla_cli.sft.data import DemoBatch

# observation keys of each input (absent keys are skipped)
INPUTS: dict[str, tuple[str, ...]] = {
    "image": ("main_images", "wrist_images"),
    "instruction": ("task_descriptions",),
    "state": ("states",),
}


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed point (n >= 2): a shuffled order rolled by one."""
    order = torch.randperm(n, generator=generator)
    target = torch.empty(n, dtype=torch.long)
    target[order] = order.roll(1)
    return target


def with_shuffled(obs: dict, keys: tuple[str, ...], index: torch.Tensor) -> dict:
    """``obs`` with the entries under ``keys`` reordered by ``index`` (lists and tensors alike)."""
    out = dict(obs)
    for key in keys:
        if key not in obs:
            continue
        value = obs[key]
        out[key] = [value[i] for i in index.tolist()] if isinstance(value, list) else value[index]
    return out


@torch.no_grad()
def input_sensitivity(
    policy: Any, demos: DemoBatch, samples: int = 256, seed: int = 0, micro_batch_size: int = 64
) -> dict[str, float]:
    """{} for fewer than 2 demo steps; else {"loss": SFT loss on ``samples`` demo steps, and per input of
    ``INPUTS`` present: the relative rise of that loss when the input is shuffled (0.0: the policy ignores
    it)}. Scores ``micro_batch_size`` samples at a time; runs in eval mode and restores the mode."""
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(demos), generator=generator)[: min(samples, len(demos))]
    batch = demos.select(pick)
    if len(batch) < 2:  # nothing to shuffle with: no verdict rather than a false "ignores its camera"
        return {}
    obs = batch.observations()
    shuffle = derangement(len(batch), generator)

    def loss(observations: dict) -> float:
        total, weight = 0.0, 0.0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for part in torch.arange(len(batch)).split(micro_batch_size):
                entries = float(batch.mask[part].sum())
                part_obs = with_shuffled(observations, tuple(observations), part)
                total += entries * float(policy.supervised_loss(part_obs, batch.actions[part], batch.mask[part]))
                weight += entries
        return total / max(weight, 1.0)

    was_training = policy.training
    policy.eval()
    try:
        base = loss(obs)
        result = {"loss": base}
        for name, keys in INPUTS.items():
            if any(k in obs for k in keys):
                result[name] = (loss(with_shuffled(obs, keys, shuffle)) - base) / max(abs(base), 1e-8)
    finally:
        policy.train(was_training)
    return result


def describe(sensitivity: dict[str, float]) -> str:
    """One line for the SFT log, with a warning when the camera does not matter."""
    if not sensitivity:
        return "input check skipped: fewer than 2 demonstration steps"
    parts = [f"{name} {100 * value:+.1f}%" for name, value in sensitivity.items() if name != "loss"]
    line = "loss rise with one input shuffled: " + ", ".join(parts)
    if sensitivity.get("image", 1.0) < 0.01:
        line += (" -- the policy ignores its camera (it acts from the other inputs alone): train longer, on more "
                 "demonstrations, or from a pretrained base before RL")
    return line

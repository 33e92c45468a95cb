"""pi0 / pi0.5 parity with LeRobot's PyTorch policies (issue 23): same weights, inputs and noise, fp32, 1e-4.

LeRobot's ``PI0Pytorch`` / ``PI05Pytorch`` (huggingface/lerobot ``src/lerobot/policies/pi0*/modeling_pi0*.py``,
ports of openpi's ``models_pytorch/pi0_pytorch.py`` with openpi's parameter names) run in a child process from the
test-only folder ``.test-deps/lerobot`` (scripts/install.sh; see ``lerobot_reference.py`` for the version, the
import-time stubs and the tiny build). The child saves LeRobot's ``state_dict`` as ``model.safetensors``; rlvla
loads that file through its own checkpoint loader (``build_policy`` with ``model_path``), which proves the key
mapping. Compared, for pi0, pi0.5 with the state in the prompt and pi0.5 without:

- the Euler (greedy) actions from the same initial noise;
- LeRobot's per-step velocity along a flow-SDE chain against rlvla's velocity at the same x_t;
- the per-step Gaussian transition log-probs: rlvla's formula (DESIGN.md "Flow matching", flow_sde: mean
  x0 (1 - (t - delta)) + x1 (t - delta - sigma_t^2 delta / (2t)), std sqrt(delta) sigma_t) applied to LeRobot's
  velocity, against rlvla's ``score_chain`` on its own velocity, and rlvla's ``sample_chain`` reproducing the chain
  from the same noise draws; flow_noise (ODE mean, learned std) from LeRobot's velocity likewise;
- the flow-matching training loss at given actions, noise and time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.models.openpi import flow_sampler
from rlvla_cli.models.openpi.checkpoint import openpi_key_to_ours
from rlvla_cli.models.openpi.flow_sampler import sample_chain, score_chain
from rlvla_cli.models.openpi.policy import images_to_pixels
from rlvla_cli.models.openpi.presets import PRESETS, GemmaDims, OpenPIDims, VisionDims
from rlvla_cli.models.openpi.state_tokens import byte_level_tokenizer, discretize_state, load_tokenizer
from rlvla_cli.models.registry import build_policy

REPO = Path(__file__).resolve().parents[3]
LEROBOT_TARGET = REPO / ".test-deps" / "lerobot"
REFERENCE_SCRIPT = Path(__file__).with_name("lerobot_reference.py")

pytestmark = pytest.mark.skipif(
    not (LEROBOT_TARGET / "lerobot").is_dir(),
    reason=f"LeRobot reference not installed in {LEROBOT_TARGET} (scripts/install.sh installs it)",
)

# 8 query heads: LeRobot's joint layer reshapes the attention output with a hard-coded 8 heads.
PARITY_DIMS = OpenPIDims(
    vision=VisionDims(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, patch_size=8, image_size=32),
    vlm=GemmaDims(width=64, mlp_dim=128, depth=2, num_heads=8, num_kv_heads=1, head_dim=8),
    expert=GemmaDims(width=32, mlp_dim=64, depth=2, num_heads=8, num_kv_heads=1, head_dim=8),
    vocab_size=320,
)
BATCH, HORIZON, ACTION_DIM, STATE_DIM, MODEL_DIM = 3, 6, 7, 8, 32
TOLERANCE = dict(atol=1e-4, rtol=1e-4)
CASES = {  # name -> (pi05, discrete_state_input, num_steps)
    "pi0": (False, False, 4),
    "pi05_state_in_prompt": (True, True, 5),
    "pi05_no_state": (True, False, 5),
}
TASKS = ["put the red cube on the plate", "open_the drawer", "pick up the bowl\nnow"]


def rlvla_config(case: str, case_dir: Path, **overrides) -> OpenPIModelConfig:
    pi05, discrete, steps = CASES[case]
    return OpenPIModelConfig(
        size="tiny", precision="fp32", model_path=str(case_dir), pi05=pi05, discrete_state_input=discrete,
        num_steps=steps, action_horizon=HORIZON, num_action_chunks=4, action_dim=ACTION_DIM,
        max_token_len=96 if pi05 else 24, num_images=2, add_value_head=False, **overrides,
    )  # fmt: skip


def write_inputs(case: str, case_dir: Path) -> None:
    """Observation, prompt tokens (rlvla's tokenizer, with or without the state), noise and SDE draws."""
    pi05, discrete, steps = CASES[case]
    gen = torch.Generator().manual_seed(7)
    states = torch.rand(BATCH, STATE_DIM, generator=gen) * 2 - 1
    byte_level_tokenizer().save(str(case_dir / "tokenizer.json"))
    tokenizer = load_tokenizer(str(case_dir))
    bins = discretize_state(states) if discrete else None  # identity norm stats: the state is already in [-1, 1]
    tokens, mask = tokenizer.tokenize_batch(TASKS, bins, 96 if pi05 else 24)
    inputs = {
        "main_images": torch.randint(0, 256, (BATCH, 32, 32, 3), generator=gen, dtype=torch.uint8),
        "wrist_images": torch.randint(0, 256, (BATCH, 32, 32, 3), generator=gen, dtype=torch.uint8),
        "state": torch.nn.functional.pad(states, (0, MODEL_DIM - STATE_DIM)),
        "tokens": tokens,
        "token_mask": mask,
        "noise": torch.randn(BATCH, HORIZON, MODEL_DIM, generator=gen),
        "train_actions": torch.randn(BATCH, HORIZON, MODEL_DIM, generator=gen),
        "train_time": torch.rand(BATCH, generator=gen) * 0.9 + 0.05,
    }
    sde_gen = torch.Generator().manual_seed(11)  # the draws sample_chain makes with this generator, in its order
    inputs["eps"] = torch.stack([torch.randn(BATCH, HORIZON, MODEL_DIM, generator=sde_gen) for _ in range(steps)])
    save_file(inputs, str(case_dir / "inputs.safetensors"))
    case_json = {"pi05": pi05, "horizon": HORIZON, "num_steps": steps, "noise_level": 0.5, "seed": 3,
                 "model_action_dim": MODEL_DIM, "dims": asdict(PARITY_DIMS)}
    (case_dir / "case.json").write_text(json.dumps(case_json))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    """Run LeRobot once for every case (one child process)."""
    root = tmp_path_factory.mktemp("lerobot_parity")
    dirs = {}
    for case in CASES:
        dirs[case] = root / case
        dirs[case].mkdir()
        write_inputs(case, dirs[case])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LEROBOT_TARGET), str(REFERENCE_SCRIPT.parent)]))
    command = [sys.executable, str(REFERENCE_SCRIPT), flow_sampler.flow_sde_transition.__code__.co_filename]
    done = subprocess.run(command + [str(d) for d in dirs.values()], env=env, capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert done.returncode == 0, f"LeRobot reference failed:\n{done.stderr[-4000:]}"
    return dirs


@pytest.fixture
def parity_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", PARITY_DIMS)


def load_case(case: str, case_dir: Path, **overrides):
    torch.manual_seed(0)
    policy = build_policy(rlvla_config(case, case_dir, **overrides)).eval()
    return policy, load_file(str(case_dir / "inputs.safetensors")), load_file(str(case_dir / "reference.safetensors"))


@pytest.mark.parametrize("case", list(CASES))
def test_lerobot_weights_load_by_name(reference, parity_preset, case):
    policy, _, _ = load_case(case, reference[case])
    ours = policy.state_dict()
    theirs = load_file(str(reference[case] / "model.safetensors"))
    mapped = {openpi_key_to_ours(k): v for k, v in theirs.items() if openpi_key_to_ours(k) is not None}
    dropped = sorted(k for k in theirs if openpi_key_to_ours(k) is None)  # tied VLM head, unused expert head
    prefix = "paligemma_with_expert."
    assert dropped == [prefix + "gemma_expert.lm_head.weight", prefix + "paligemma.lm_head.weight"]
    assert set(mapped) == {k for k in ours if k.startswith("flow.")}  # every network tensor comes from LeRobot
    for name, tensor in mapped.items():
        assert torch.equal(ours[name], tensor), name


@pytest.mark.parametrize("case", list(CASES))
def test_sampling_matches_lerobot(reference, parity_preset, case):
    policy, inputs, ref = load_case(case, reference[case])
    with torch.no_grad():
        _, _, cache = policy._prefix(inputs)
        step = policy._step_fn(cache, inputs["state"])
        settings = policy.settings
        greedy = sample_chain(settings, step, inputs["noise"], torch.full((BATCH, 1), -1))
        torch.testing.assert_close(greedy.chain[:, -1], ref["euler_actions"], **TOLERANCE)

        grid = flow_sampler.flow_timesteps(settings.num_steps)
        for k in range(settings.num_steps):  # velocity at LeRobot's x_t
            velocity, _ = policy.flow.velocity(cache, inputs["state"], ref["sde_chain"][:, k], grid[k].expand(BATCH))
            torch.testing.assert_close(velocity, ref["sde_velocity"][:, k], **TOLERANCE)

        joint = replace(settings, joint_logprob=True)
        inds = torch.arange(settings.num_steps).expand(BATCH, -1)
        scored = score_chain(joint, step, ref["sde_chain"], inds)  # column 0: the initial noise's density
        torch.testing.assert_close(scored.logprobs[:, 1:], ref["sde_logprob"], **TOLERANCE)

        sampled = sample_chain(joint, step, inputs["noise"], inds, generator=torch.Generator().manual_seed(11))
        torch.testing.assert_close(sampled.chain, ref["sde_chain"], **TOLERANCE)
        torch.testing.assert_close(sampled.logprobs[:, 1:], ref["sde_logprob"], **TOLERANCE)


def test_flow_noise_logprob_from_lerobot_velocity(reference, parity_preset):
    """flow_noise: mean = the ODE step of the velocity, std from rlvla's noise head (LeRobot has none)."""
    policy, inputs, ref = load_case("pi0", reference["pi0"], noise_method="flow_noise")
    settings = policy.settings
    grid = flow_sampler.flow_timesteps(settings.num_steps)
    with torch.no_grad():
        torch.nn.init.normal_(policy.noise_head.mlp[-1].weight, std=0.5)  # a non-constant std
        _, _, cache = policy._prefix(inputs)
        step = policy._step_fn(cache, inputs["state"])
        chain = ref["sde_chain"]
        scored = score_chain(settings, step, chain, torch.arange(settings.num_steps).expand(BATCH, -1))
        for k in range(settings.num_steps):
            x_t, t = chain[:, k], grid[k].view(1, 1, 1)
            delta = (grid[k] - grid[k + 1]).view(1, 1, 1)
            _, out = policy.flow.velocity(cache, inputs["state"], x_t, grid[k].expand(BATCH))
            std = flow_sampler.flow_noise_std(policy.noise_head(out), settings.min_std, settings.max_std)
            mean = flow_sampler.ode_transition(x_t, ref["sde_velocity"][:, k], t, delta)
            expected = flow_sampler.gaussian_log_prob(chain[:, k + 1], mean, std)
            torch.testing.assert_close(scored.logprobs[:, k + 1], expected, **TOLERANCE)


@pytest.mark.parametrize("case", list(CASES))
def test_training_loss_matches_lerobot(reference, parity_preset, case):
    policy, inputs, ref = load_case(case, reference[case])
    with torch.no_grad():
        size = policy.dims.vision.image_size
        pixels = [images_to_pixels(inputs[k], size) for k in ("main_images", "wrist_images")]
        masks = [torch.ones(BATCH, dtype=torch.bool)] * 2
        prefix, pad = policy.flow.embed_prefix(pixels, masks, inputs["tokens"], inputs["token_mask"])
        loss = policy.flow.flow_matching_loss(prefix, pad, inputs["state"], inputs["train_actions"],
                                              noise=inputs["noise"], time=inputs["train_time"])
    torch.testing.assert_close(loss, ref["train_loss"], **TOLERANCE)

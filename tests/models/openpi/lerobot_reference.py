"""Reference side of the pi0 / pi0.5 parity tests: LeRobot's PyTorch flow models on tiny random weights.

Run in its own process (``python lerobot_reference.py FLOW_MATCHING_PY CASE_DIR...``) with the test-only target
``.test-deps/lerobot`` first on ``PYTHONPATH``: that folder holds LeRobot and the transformers release its pi0
code is written for (scripts/install.sh), which differ from the ones rlvla runs on, so the two never share a
process. Reads ``CASE_DIR/case.json`` and ``CASE_DIR/inputs.safetensors`` (written by the test), writes
``CASE_DIR/model.safetensors`` (LeRobot's ``state_dict``: the openpi PyTorch key layout) and
``CASE_DIR/reference.safetensors``:

- ``euler_actions`` ``[B, H, D]``: ``PI0Pytorch.sample_actions`` / ``PI05Pytorch.sample_actions`` from ``noise``
  (openpi's Euler loop, t = 1 -> 0 in ``num_steps`` steps);
- ``sde_chain`` ``[B, K + 1, H, D]``, ``sde_velocity`` ``[B, K, H, D]``, ``sde_logprob`` ``[B, K, H, D]``: a flow-SDE
  chain whose velocities are LeRobot's ``denoise_step`` at each x_t and whose Gaussian transitions (mean, std and
  log-prob) come from rlvla's pure functions (``FLOW_MATCHING_PY``, loaded by path so nothing else of rlvla, nor
  its transformers, is imported here), with the test's ``eps`` as the noise of each step;
- ``train_loss`` ``[B, H, D]``: LeRobot's training ``forward`` at given ``train_actions`` / ``noise`` / ``time``.

Import-time stubs (module names the pi0 / pi0.5 modeling code imports through LeRobot's packages but never calls):
``torchvision`` (+ ``.io``, ``.transforms``, ``.transforms.v2``: LeRobot's image-augmentation module, imported by
its config package; torchvision is not installed beside rlvla), ``lerobot.utils.io_utils`` and
``lerobot.configs.train`` (JSON / training-pipeline helpers whose source uses Python 3.12 syntax), and the package
``__init__`` files of ``lerobot.policies``, ``.pi0``, ``.pi05`` and ``.rtc`` (they import every policy and the
data-processing pipeline, also 3.12 syntax); those packages keep their real ``__path__``.

Tiny size: LeRobot's ``PaliGemmaWithExpertModel.__init__`` hard-codes SigLIP So400m's MLP width (4304), a 2048-wide
projector and the gemma_2b / gemma_300m variants. The tiny build makes the same LeRobot classes
(``PaliGemmaForConditionalGenerationWithPiGemma``, ``PiGemmaForCausalLM``) from tiny transformers configs carrying
the fields LeRobot sets (gelu_pytorch_tanh, ``use_adarms`` / ``adarms_cond_dim`` = expert width for pi0.5, the
expert's token embedding dropped); every forward pass is LeRobot's own code.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

STUB_MODULES = ("torchvision", "torchvision.io", "torchvision.transforms", "torchvision.transforms.v2",
                "torchvision.transforms.v2.functional", "lerobot.utils.io_utils", "lerobot.configs.train")
BYPASSED_INITS = ("lerobot.policies", "lerobot.policies.pi0", "lerobot.policies.pi05", "lerobot.policies.rtc")


def _never(*_args, **_kwargs):
    raise RuntimeError("import-time stub called: the parity test does not use this LeRobot feature")


def install_import_stubs(lerobot_root: Path) -> None:
    """Register the stub modules and the init-less packages listed in the module docstring."""

    def stub(name: str, **attrs) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        return module

    class Transform(nn.Module):  # base class of LeRobot's augmentation transforms; never instantiated here
        def forward(self, *args, **kwargs):
            _never()

    tv = stub("torchvision")
    tv.io = stub("torchvision.io", decode_image=_never, encode_jpeg=_never)
    tv.transforms = stub("torchvision.transforms")
    tv.transforms.v2 = stub("torchvision.transforms.v2", Transform=Transform, Identity=Transform)
    tv.transforms.v2.functional = stub("torchvision.transforms.v2.functional")
    stub("lerobot.utils.io_utils", deserialize_json_into_object=_never, load_json=_never, write_json=_never)
    stub("lerobot.configs.train", TrainPipelineConfig=type("TrainPipelineConfig", (), {}))
    for name in BYPASSED_INITS:
        stub(name).__path__ = [str(lerobot_root.joinpath(*name.split(".")[1:]))]


def import_lerobot():
    """LeRobot's pi0 / pi0.5 modeling modules, their configs and the PiGemma classes."""
    spec = importlib.util.find_spec("lerobot")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("lerobot is not importable: put .test-deps/lerobot on PYTHONPATH (scripts/install.sh)")
    # transformers first, so its package checks see the real environment (no torchvision), not the stubs.
    import transformers.models.gemma.modeling_gemma  # noqa: F401
    import transformers.models.paligemma.modeling_paligemma  # noqa: F401
    from transformers.models.auto import CONFIG_MAPPING  # noqa: F401

    install_import_stubs(Path(next(iter(spec.submodule_search_locations))))
    import lerobot.policies.pi0.modeling_pi0 as pi0_modeling
    import lerobot.policies.pi05.modeling_pi05 as pi05_modeling
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi05.configuration_pi05 import PI05Config
    from lerobot.policies.pi_gemma import PaliGemmaForConditionalGenerationWithPiGemma, PiGemmaForCausalLM

    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]  # import-time only: gone before anything runs

    return pi0_modeling, pi05_modeling, PI0Config, PI05Config, PaliGemmaForConditionalGenerationWithPiGemma, \
        PiGemmaForCausalLM


def tiny_with_expert_factory(module, dims: dict, paligemma_cls, expert_cls):
    """A stand-in for ``module.PaliGemmaWithExpertModel(...)`` that builds LeRobot's class at the tiny size."""
    from transformers import GemmaConfig as HFGemmaConfig
    from transformers import PaliGemmaConfig

    real = getattr(module.PaliGemmaWithExpertModel, "lerobot_class", module.PaliGemmaWithExpertModel)  # 2nd case

    def build(vlm_config, action_expert_config, use_adarms=None, precision="float32", image_size=224,
              freeze_vision_encoder=False, train_expert_only=False):
        use_adarms = use_adarms or [False, False]
        model = real.__new__(real)
        nn.Module.__init__(model)
        model.freeze_vision_encoder, model.train_expert_only = freeze_vision_encoder, train_expert_only
        vision = dims["vision"]
        text = dict(model_type="gemma", hidden_size=vlm_config.width, intermediate_size=vlm_config.mlp_dim,
                    num_attention_heads=vlm_config.num_heads, head_dim=vlm_config.head_dim,
                    num_hidden_layers=vlm_config.depth, num_key_value_heads=vlm_config.num_kv_heads,
                    hidden_activation="gelu_pytorch_tanh", vocab_size=dims["vocab_size"],
                    use_adarms=use_adarms[0], adarms_cond_dim=vlm_config.width if use_adarms[0] else None)
        vision_cfg = dict(model_type="siglip_vision_model", hidden_size=vision["hidden_size"],
                          intermediate_size=vision["intermediate_size"], num_hidden_layers=vision["num_layers"],
                          num_attention_heads=vision["num_heads"], patch_size=vision["patch_size"],
                          image_size=image_size, projector_hidden_act="gelu_fast", vision_use_head=False)
        cfg = PaliGemmaConfig(text_config=text, vision_config=vision_cfg, vocab_size=dims["vocab_size"],
                              image_token_index=dims["vocab_size"] - 1, projection_dim=vlm_config.width)
        model.paligemma = paligemma_cls(config=cfg)
        expert_cfg = HFGemmaConfig(
            head_dim=action_expert_config.head_dim, hidden_size=action_expert_config.width,
            intermediate_size=action_expert_config.mlp_dim, num_attention_heads=action_expert_config.num_heads,
            num_hidden_layers=action_expert_config.depth, num_key_value_heads=action_expert_config.num_kv_heads,
            vocab_size=dims["vocab_size"], hidden_activation="gelu_pytorch_tanh", use_adarms=use_adarms[1],
            adarms_cond_dim=action_expert_config.width if use_adarms[1] else None,
        )
        model.gemma_expert = expert_cls(config=expert_cfg)
        model.gemma_expert.model.embed_tokens = None
        model.to_bfloat16_for_selected_params(precision)
        model._set_requires_grad()
        return model

    build.lerobot_class = real
    return build


def build_tiny(case: dict):
    """LeRobot's PI0Pytorch / PI05Pytorch at the case's tiny dims, randomly initialised from ``case["seed"]``."""
    pi0_mod, pi05_mod, pi0_cfg_cls, pi05_cfg_cls, paligemma_cls, expert_cls = import_lerobot()
    module, cfg_cls = (pi05_mod, pi05_cfg_cls) if case["pi05"] else (pi0_mod, pi0_cfg_cls)
    dims = case["dims"]
    vlm = module.GemmaConfig(**dims["vlm"])
    expert = module.GemmaConfig(**dims["expert"])
    module.get_gemma_config = lambda variant: vlm if variant == "gemma_2b" else expert
    module.PaliGemmaWithExpertModel = tiny_with_expert_factory(module, dims, paligemma_cls, expert_cls)
    size = dims["vision"]["image_size"]
    config = cfg_cls(chunk_size=case["horizon"], n_action_steps=case["horizon"], num_inference_steps=case["num_steps"],
                     image_resolution=(size, size), dtype="float32", max_action_dim=case["model_action_dim"],
                     max_state_dim=case["model_action_dim"])
    torch.manual_seed(case["seed"])
    model = (module.PI05Pytorch if case["pi05"] else module.PI0Pytorch)(config)
    with torch.no_grad():  # zero-initialised tensors (norm scales, adaRMS `dense`, biases) get random values too,
        for param in model.parameters():  # so the comparison exercises every weight
            if not param.any():
                param.normal_(0.0, 0.05)
    return model.eval()


def load_flow_matching(path: str):
    spec = importlib.util.spec_from_file_location("rlvla_flow_matching_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prefix_inputs(inputs: dict) -> tuple[list, list, torch.Tensor, torch.Tensor]:
    """uint8 ``[B, h, w, 3]`` cameras -> LeRobot's model images: [0, 1] floats, then ``img * 2 - 1`` (``PI0Policy.
    _preprocess_images``; the images already have the model's resolution, so no resize)."""
    images = [(inputs[k].float() / 255.0 * 2.0 - 1.0).permute(0, 3, 1, 2) for k in ("main_images", "wrist_images")]
    masks = [torch.ones(images[0].shape[0], dtype=torch.bool)] * 2
    return images, masks, inputs["tokens"], inputs["token_mask"]


@torch.no_grad()
def run(case_dir: Path, flow_matching_path: str) -> None:
    case = json.loads((case_dir / "case.json").read_text())
    inputs = load_file(str(case_dir / "inputs.safetensors"))
    fm = load_flow_matching(flow_matching_path)
    model = build_tiny(case)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(case_dir / "model.safetensors"),
              metadata={"format": "pt"})
    images, img_masks, tokens, token_mask = prefix_inputs(inputs)
    state, noise, pi05 = inputs["state"], inputs["noise"], case["pi05"]
    extra = () if pi05 else (state,)
    out = {"euler_actions": model.sample_actions(images, img_masks, tokens, token_mask, *extra, noise=noise)}

    # Prefix KV cache exactly as sample_actions builds it, then LeRobot's denoise_step along a flow-SDE chain.
    prefix, prefix_pad, prefix_att = model.embed_prefix(images, img_masks, tokens, token_mask)
    att_4d = pi0_prepare_masks(model, prefix_pad, prefix_att)
    _, cache = model.paligemma_with_expert.forward(attention_mask=att_4d,
                                                   position_ids=torch.cumsum(prefix_pad, dim=1) - 1,
                                                   past_key_values=None, inputs_embeds=[prefix, None], use_cache=True)
    grid = fm.flow_timesteps(case["num_steps"])
    x, chain, velocities, logps = noise, [noise], [], []
    for k in range(case["num_steps"]):
        t = grid[k].expand(x.shape[0])
        step_args = dict(prefix_pad_masks=prefix_pad, past_key_values=cache, x_t=x, timestep=t)
        v = model.denoise_step(**step_args) if pi05 else model.denoise_step(state=state, **step_args)
        t3, delta = grid[k].view(1, 1, 1), (grid[k] - grid[k + 1]).view(1, 1, 1)
        mean, std = fm.flow_sde_transition(x, v, t3, delta, case["noise_level"])
        x_next = mean + std * inputs["eps"][k]
        velocities.append(v)
        logps.append(fm.gaussian_log_prob(x_next, mean, std))
        chain.append(x_next)
        x = x_next
    out.update(sde_chain=torch.stack(chain, 1), sde_velocity=torch.stack(velocities, 1))
    out["sde_logprob"] = torch.stack(logps, 1)
    train_args = (images, img_masks, tokens, token_mask) + extra
    out["train_loss"] = model.forward(*train_args, inputs["train_actions"], inputs["noise"], inputs["train_time"])
    save_file({k: v.contiguous().float() for k, v in out.items()}, str(case_dir / "reference.safetensors"))


def pi0_prepare_masks(model, pad, att) -> torch.Tensor:
    """The prefix's additive 4-D mask, by LeRobot's ``make_att_2d_masks`` and ``prepare_attention_masks_4d``."""
    module = sys.modules[type(model).__module__]
    return module.prepare_attention_masks_4d(module.make_att_2d_masks(pad, att))


if __name__ == "__main__":
    for directory in sys.argv[2:]:
        run(Path(directory), sys.argv[1])

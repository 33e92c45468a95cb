"""GPU memory arithmetic: pure functions on counts and shapes, each docstring states its formula.

Everything is in bytes. Predictions are estimates of the steady-state peak (what ``torch.cuda.max_memory_allocated``
would show plus the CUDA context); allocator fragmentation is not modelled, so the planner keeps a margin.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvla_cli.placement.model_sizes import TransformerStack

KIB, MIB, GIB = 1024, 1024**2, 1024**3
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
CUDA_CONTEXT_BYTES = 682 * MIB
"""CUDA context + cuBLAS workspace of one process that touches the GPU: 682 MiB measured on both an H100 and
an H200 with torch 2.11 / CUDA 13 (``test_placement_gpu_memory``)."""

ADAM_MIXED_BYTES_PER_PARAM = 12
"""bf16/fp16 mixed precision: fp32 master copy (4) + Adam m (4) + Adam v (4) per trainable parameter."""
ADAM_FP32_BYTES_PER_PARAM = 8
"""Pure fp32 training: the weights are the master copy; Adam m (4) + v (4) per trainable parameter."""


def dtype_bytes(precision: str) -> int:
    """Bytes per element of ``fp32`` / ``bf16`` / ``fp16``."""
    try:
        return DTYPE_BYTES[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(DTYPE_BYTES)}") from None


def weight_bytes(num_params: int, precision: str) -> int:
    """``num_params x bytes(precision)``: bf16 2 B, fp32 4 B."""
    return num_params * dtype_bytes(precision)


@dataclass(frozen=True)
class TrainingState:
    """Per-rank GPU bytes of the trainer's persistent state (what offload moves to the CPU)."""

    params: int
    grads: int
    optimizer: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer


def training_state_bytes(
    trainable: int,
    frozen: int,
    *,
    mixed_precision: bool,
    zero_stage: int,
    dp_size: int,
    offload_optimizer: bool = False,
    offload_param: bool = False,
    param_working_set: int = 0,
) -> TrainingState:
    """Weights, gradients and Adam states on one trainer rank under DeepSpeed ZeRO.

    Mixed precision (bf16): params 2 B x (trainable + frozen), grads 2 B x trainable, optimizer 12 B x
    trainable (fp32 master + m + v). Pure fp32: params 4 B, grads 4 B, optimizer 8 B (m + v).
    ZeRO partitions over ``dp_size`` ranks: stage >= 1 the optimizer, >= 2 also the grads, 3 also the
    params (frozen ones too). ``offload_optimizer`` keeps the optimizer (and its fp32 grads) on the CPU:
    0 GPU bytes. ``offload_param`` (stage 3) keeps params on the CPU; the GPU holds
    ``param_working_set`` parameters being gathered (about two layers), at the param dtype.
    Frozen parameters have no grads and no optimizer state.
    """
    param_b = 2 if mixed_precision else 4
    optim_b = ADAM_MIXED_BYTES_PER_PARAM if mixed_precision else ADAM_FP32_BYTES_PER_PARAM
    params = param_b * (trainable + frozen)
    grads = param_b * trainable
    optimizer = optim_b * trainable
    if zero_stage >= 1:
        optimizer = _ceil_div(optimizer, dp_size)
    if zero_stage >= 2:
        grads = _ceil_div(grads, dp_size)
    if zero_stage >= 3:
        params = _ceil_div(params, dp_size)
    if offload_optimizer:
        optimizer = 0
    if offload_param:
        params = param_b * param_working_set
    return TrainingState(params=params, grads=grads, optimizer=optimizer)


def layer_activation_elements_per_token(stack: TransformerStack) -> int:
    """Tensors one transformer layer keeps for backward, in bf16 elements per token (fp32 counts twice).

    ``2 (norm_saves + 1) h + 3 q_dim + 2 kv_dim + (4f | 2f) (+ 2h with LayerScale)``:

    - two norms, each keeping ``norm_saves x h`` inside (transformers' RMSNorm upcasts to fp32) plus its
      output ``h``, the input of the next linear;
    - attention (flash / SDPA, no ``s^2`` score matrix, no dropout): q, k, v ``q + 2 kv``, its output ``q``
      and the o-projection's contiguous copy of it ``q``;
    - gated MLP (SwiGLU / GeGLU): gate, act(gate), up, product ``4f``; plain GELU MLP: fc1 out, act ``2f``;
    - LayerScale (DINOv2): the two scaled inputs ``2h``.

    Llama-2-7B: 2*4*4096 + 3*4096 + 2*4096 + 4*11008 = 97,280; Gemma 2B: 2*5*2048 + 3*2048 + 2*256 +
    4*16384 = 92,672. Measured with ``tests/placement/test_placement_gpu_memory.py`` on an H200
    (transformers 5.x, torch 2.11, bf16, SDPA, 4 full-width layers, 4 x 284 tokens), measured / predicted:
    Llama 0.98, Gemma 0.98, DINOv2-L blocks of ``models/vision.py`` 0.94, Llama with bf16 LoRA r=32 on
    every linear 0.86 (frozen linears keep less), checkpointed Llama / Gemma 0.87 / 0.88.
    Korthikanti et al. (2022) count 34 h for GPT with dropout and non-flash attention.
    """
    h, f = stack.hidden, stack.intermediate
    norms = 2 * (stack.norm_saves + 1) * h
    attention = 3 * stack.q_dim + 2 * stack.kv_dim
    mlp = 4 * f if stack.gated_mlp else 2 * f
    return norms + attention + mlp + (2 * h if stack.layer_scale else 0)


def final_norm_elements_per_token(stack: TransformerStack) -> int:
    """The stack's final norm keeps its internals, ``norm_saves x h`` (0 without one); its output belongs to
    whatever reads it (the LM head's input is counted with the logits)."""
    return stack.norm_saves * stack.hidden if stack.final_norm else 0


def stack_activation_bytes(
    stack: TransformerStack, tokens: int, batch: int, *, checkpointing: bool, act_bytes: int = 2, passes: int = 1
) -> int:
    """Activations a stack keeps for backward over one micro-batch.

    Without checkpointing: ``(L e + n) x tokens x batch x passes x act_bytes`` with ``e`` from
    :func:`layer_activation_elements_per_token` and ``n`` the final norm's
    (:func:`final_norm_elements_per_token`). With per-layer checkpointing only each layer's input
    (``h`` per token) is kept, plus one layer's full activations while it is recomputed:
    ``(L h + e + n) x tokens x batch x passes x act_bytes``. ``passes``: forward passes with grad per sample
    (pi0's expert runs once per scored denoising step).
    """
    per_token = layer_activation_elements_per_token(stack)
    final = final_norm_elements_per_token(stack)
    token_count = tokens * batch * passes
    if checkpointing:
        return (stack.num_layers * stack.hidden + per_token + final) * token_count * act_bytes
    return (stack.num_layers * per_token + final) * token_count * act_bytes


def logits_bytes(batch: int, seq_tokens: int, scored_tokens: int, vocab: int) -> int:
    """LM-head memory of one training micro-batch.

    bf16 logits for every position (``seq x V x 2``) + fp32 log-softmax of the scored (action) positions
    and its gradient (``scored x V x 8``), per sample.
    """
    if vocab == 0:
        return 0
    return batch * (seq_tokens * vocab * 2 + scored_tokens * vocab * 8)


def kv_cache_bytes(stack: TransformerStack, tokens: int, batch: int, act_bytes: int = 2) -> int:
    """Keys and values of every layer: ``2 x L x tokens x batch x kv_dim x act_bytes``."""
    return 2 * stack.num_layers * tokens * batch * stack.kv_dim * act_bytes


def inference_transient_bytes(stack: TransformerStack, tokens: int, batch: int, act_bytes: int = 2) -> int:
    """Peak working memory of a no-grad forward: at most one layer's activations alive at a time
    (upper bound: the per-layer count of :func:`layer_activation_elements_per_token`)."""
    return layer_activation_elements_per_token(stack) * tokens * batch * act_bytes


def sampling_logits_bytes(batch: int, tokens: int, vocab: int) -> int:
    """fp32 logits of the positions sampled in one call: ``batch x tokens x V x 4``."""
    return batch * tokens * vocab * 4


# Simulator GPU memory (estimates; see ``simulator_bytes``).
MANISKILL_RENDER_BASE = 384 * MIB
MANISKILL_RENDER_PER_ENV = 16 * MIB
MANISKILL_PHYSX_CUDA_BASE = 1024 * MIB
MANISKILL_PHYSX_CUDA_PER_ENV = 4 * MIB
LIBERO_EGL_PER_ENV = 96 * MIB


def simulator_bytes(
    env_type: str, num_envs: int, *, image_pixels: int = 0, cameras: int = 1, gpu_render: bool = True,
    gpu_physics: bool = False,
) -> int:
    """GPU memory of one env worker holding ``num_envs`` envs (its CUDA context is counted separately).

    - builtin: pure torch on the CPU: 0.
    - maniskill, GPU rendering: 384 MiB (Vulkan device, shaders, textures) + per env 16 MiB (scene
      render resources) + camera buffers ``pixels x cameras x 16 B`` (RGBA8 colour, depth/segmentation,
      the CUDA-shared copy); ``physx_cuda`` physics adds 1 GiB of preallocated PhysX buffers + 4 MiB per env.
    - libero / metaworld, EGL rendering: per env one MuJoCo EGL context with its framebuffers, 96 MiB + camera
      buffers (measured for LIBERO; MetaWorld's MuJoCo context is assumed alike); OSMesa renders on the CPU: 0.
    """
    cam = num_envs * image_pixels * cameras * 16
    if env_type == "builtin":
        return 0
    if env_type == "maniskill":
        total = 0
        if gpu_render:
            total += MANISKILL_RENDER_BASE + num_envs * MANISKILL_RENDER_PER_ENV + cam
        if gpu_physics:
            total += MANISKILL_PHYSX_CUDA_BASE + num_envs * MANISKILL_PHYSX_CUDA_PER_ENV
        return total
    if env_type in ("libero", "metaworld"):
        return num_envs * LIBERO_EGL_PER_ENV + cam if gpu_render else 0
    raise ValueError(f"unknown env_type {env_type!r}")


def parse_memory_size(text: str) -> int:
    """``"80GiB"``, ``"24GB"``, ``"81920MiB"``, ``"1.5TiB"`` or plain bytes -> bytes (GB = 10^9, GiB = 2^30).

    Raises ``ValueError`` on anything else.
    """
    import re

    units = {
        "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
        "kib": KIB, "mib": MIB, "gib": GIB, "tib": 1024**4, "k": KIB, "m": MIB, "g": GIB, "t": 1024**4,
    }
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in units:
        raise ValueError(f"cannot read {text!r} as a memory size")
    value = float(match.group(1)) * units[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"memory size {text!r} must be positive")
    return int(value)


def format_bytes(num: int | float) -> str:
    """Human form in GiB (or MiB below 1 GiB): ``17.3 GiB``, ``512 MiB``."""
    if abs(num) >= GIB:
        return f"{num / GIB:.1f} GiB"
    return f"{num / MIB:.0f} MiB"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)

"""Predicted memory per process and per GPU, by phase (rollout vs training), for a resolved placement.

Phases on one GPU (components sharing a GPU take turns; the simulator stays resident):

- rollout phase = env (simulator + context) + rollout (weights + KV cache / activations + context)
  + actor (context + its state unless the actor is offloaded to the CPU);
- training phase = env (simulator + context) + actor (state + activations + context)
  + rollout (context + its weights unless the rollout is offloaded).

``state`` is weights + gradients + optimizer of :func:`memory.training_state_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlvla_cli.placement import memory as mem
from rlvla_cli.placement.profiles import ModelProfile
from rlvla_cli.placement.resolve import ResolvedPlacement

if TYPE_CHECKING:
    from rlvla_cli.config.schema import RootConfig


@dataclass(frozen=True)
class MemorySettings:
    """The config values the memory model reads, flattened (what-if variants use ``dataclasses.replace``)."""

    micro_batch_size: int = 1
    zero_stage: int = 2
    offload_optimizer: bool = False
    offload_param: bool = False
    mixed_precision: bool = True
    checkpointing: bool = False
    rollout_precision: str = "bf16"
    actor_offload: bool = False
    rollout_offload: bool = False
    pipeline_stage_num: int = 1
    env_type: str = "builtin"
    total_num_envs: int = 1
    image_pixels: int = 0
    cameras: int = 1
    gpu_render: bool = False
    gpu_physics: bool = False


def settings_from_config(cfg: RootConfig) -> MemorySettings:
    """Read a RootConfig into :class:`MemorySettings` (eval envs counted when there are more of them)."""
    actor, ds, model, train = cfg.actor, cfg.actor.deepspeed, cfg.actor.model, cfg.env.train
    envs = max(train.total_num_envs, cfg.env.eval.total_num_envs)
    pixels, cameras, gpu_render, gpu_physics = 0, 1, False, False
    params = getattr(train, "init_params", None)
    if train.env_type == "maniskill":
        pixels = params.camera_width * params.camera_height
        gpu_render = params.render_backend != "cpu"  # `auto` renders on the GPU when one is present
        gpu_physics = params.sim_backend == "physx_cuda"
    elif train.env_type == "libero":
        pixels, cameras = params.camera_width * params.camera_height, 2 if params.use_wrist_image else 1
        gpu_render = params.render_backend != "osmesa"  # auto: EGL, on the GPU when one is present
    elif train.env_type == "metaworld":
        pixels, cameras = params.camera_width * params.camera_height, 1
        gpu_render = params.render_backend != "osmesa"
    return MemorySettings(
        micro_batch_size=actor.micro_batch_size if isinstance(actor.micro_batch_size, int) else 1,  # `auto`
        zero_stage=ds.zero_stage,
        offload_optimizer=ds.offload_optimizer,
        offload_param=ds.offload_param,
        mixed_precision=ds.bf16 or model.precision != "fp32",
        checkpointing=bool(getattr(actor, "gradient_checkpointing", False) or model.gradient_checkpointing),
        rollout_precision=cfg.rollout.precision,
        actor_offload=actor.enable_offload,
        rollout_offload=cfg.rollout.enable_offload,
        pipeline_stage_num=cfg.rollout.pipeline_stage_num,
        env_type=train.env_type,
        total_num_envs=envs,
        image_pixels=pixels,
        cameras=cameras,
        gpu_render=gpu_render,
        gpu_physics=gpu_physics,
    )


@dataclass(frozen=True)
class ProcessMemory:
    """One process's GPU bytes by part.

    state: kept in both phases unless offloaded (actor: weights/grads/optimizer; rollout: weights;
    env: simulator). train_only / rollout_only: alive only in that phase. context: the CUDA context.
    """

    component: str
    rank: int
    gpu_rank: int
    state: dict[str, int]
    train_only: dict[str, int] = field(default_factory=dict)
    rollout_only: dict[str, int] = field(default_factory=dict)
    context: int = 0


def actor_process_memory(profile: ModelProfile, s: MemorySettings, dp_size: int) -> tuple[dict, dict]:
    """(state, training-only activations) of one trainer rank."""
    st = mem.training_state_bytes(
        profile.trainable_params, profile.frozen_params, mixed_precision=s.mixed_precision,
        zero_stage=s.zero_stage, dp_size=dp_size, offload_optimizer=s.offload_optimizer,
        offload_param=s.offload_param, param_working_set=2 * profile.max_layer_params,
    )
    act_b = 2 if s.mixed_precision else 4
    mb = s.micro_batch_size
    acts = sum(
        mem.stack_activation_bytes(g.stack, g.tokens, mb, checkpointing=s.checkpointing, act_bytes=act_b,
                                   passes=g.passes)
        for g in profile.grad_stacks
    )
    if not s.checkpointing:
        acts = int(acts * profile.lora_activation_factor)
    acts += profile.extra_train_activation_bytes * mb
    logits = mem.logits_bytes(mb, profile.train_logit_tokens, profile.scored_tokens, profile.vocab)
    state = {"weights": st.params, "grads": st.grads, "optimizer": st.optimizer}
    return state, {"activations": acts, "logits": logits}


def rollout_batch(s: MemorySettings, rollout_workers: int) -> int:
    """Observations one rollout process infers per call: envs / pipeline stages / rollout workers (ceil)."""
    return -(-s.total_num_envs // (s.pipeline_stage_num * rollout_workers))


def rollout_process_memory(profile: ModelProfile, s: MemorySettings, batch: int) -> tuple[dict, dict]:
    """(weights, rollout-only KV cache + largest transient layer + sampling logits) of one rollout process."""
    act_b = mem.dtype_bytes(s.rollout_precision)
    kv = sum(mem.kv_cache_bytes(i.stack, i.tokens, batch, act_b) for i in profile.infer_stacks if i.kv_cached)
    transient = max((mem.inference_transient_bytes(i.stack, i.tokens, batch, act_b) for i in profile.infer_stacks),
                    default=0)
    logits = mem.sampling_logits_bytes(batch, profile.sampled_tokens, profile.vocab)
    weights = {"weights": mem.weight_bytes(profile.total_params, s.rollout_precision)}
    return weights, {"kv_cache": kv, "activations": transient + logits}


def env_process_memory(s: MemorySettings, num_envs: int) -> int:
    return mem.simulator_bytes(
        s.env_type, num_envs, image_pixels=s.image_pixels, cameras=s.cameras, gpu_render=s.gpu_render,
        gpu_physics=s.gpu_physics,
    )


def process_memories(placement: ResolvedPlacement, profile: ModelProfile, s: MemorySettings) -> list[ProcessMemory]:
    """Every process of the placement with its memory parts (CPU mode: everything 0)."""
    if placement.cpu_mode:
        return []
    ctx = mem.CUDA_CONTEXT_BYTES
    out = []
    state, train_only = actor_process_memory(profile, s, placement.actor_dp_size)
    for p in placement.components["actor"].processes:
        out.append(ProcessMemory("actor", p.rank, p.gpu_rank, state, train_only=train_only, context=ctx))
    weights, rollout_only = rollout_process_memory(profile, s, rollout_batch(s, placement.rollout_workers))
    for p in placement.components["rollout"].processes:
        out.append(ProcessMemory("rollout", p.rank, p.gpu_rank, weights, rollout_only=rollout_only, context=ctx))
    envs_per_worker = -(-s.total_num_envs // placement.env_workers)
    sim = env_process_memory(s, envs_per_worker)
    for p in placement.components["env"].processes:
        out.append(ProcessMemory("env", p.rank, p.gpu_rank, {"simulator": sim}, context=ctx if sim else 0))
    return out


@dataclass
class GpuMemory:
    """Predicted bytes on one GPU by component, in each phase."""

    gpu_rank: int
    node: int
    local_gpu: int
    processes: dict[str, int]
    training: dict[str, int]
    rollout: dict[str, int]

    @property
    def training_total(self) -> int:
        return sum(self.training.values())

    @property
    def rollout_total(self) -> int:
        return sum(self.rollout.values())

    @property
    def peak(self) -> int:
        return max(self.training_total, self.rollout_total)


def gpu_memories(
    placement: ResolvedPlacement, procs: list[ProcessMemory], *, actor_offload: bool, rollout_offload: bool
) -> list[GpuMemory]:
    """Sum processes per GPU and phase, applying the offload decisions (see the module docstring)."""
    gpus = []
    for gpu_rank in placement.used_gpu_ranks:
        node, local = divmod(gpu_rank, placement.gpus_per_node)
        here = [p for p in procs if p.gpu_rank == gpu_rank]
        counts = {c: sum(1 for p in here if p.component == c) for c in placement.components_on_gpu(gpu_rank)}
        training = dict.fromkeys(counts, 0)
        rollout = dict.fromkeys(counts, 0)
        for p in here:
            state = sum(p.state.values())
            offload_in_rollout = p.component == "actor" and actor_offload
            offload_in_training = p.component == "rollout" and rollout_offload
            training[p.component] += p.context + sum(p.train_only.values()) + (0 if offload_in_training else state)
            rollout[p.component] += p.context + sum(p.rollout_only.values()) + (0 if offload_in_rollout else state)
        gpus.append(GpuMemory(gpu_rank, node, local, counts, training, rollout))
    return gpus

"""The trainer: a DeepSpeed engine around the policy, running the algorithm core's update.

One ``Trainer`` per actor rank (data parallel); it is the only optimizer-step path of the project (PPO / GRPO
and SFT alike; it runs on the CPU too). It is the update's ``Stepper`` (algorithms/update.py). DeepSpeed runs
with ``managed_gradient_accumulation: false``: ``backward`` only accumulates gradients locally and ``step`` is
the accumulation boundary (reduce, clip, optimizer step), so an uneven last micro-batch needs no special case.
A torch AdamW is passed in (no DeepSpeed op is JIT-compiled on a CPU); its two param groups carry ``lr`` and
``value_lr``. Non-finite gradients skip the optimizer step (DeepSpeed's overflow path for ZeRO >= 1 and bf16,
:class:`FiniteAdamW` for ZeRO 0) and are counted as skipped steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlvla_cli.algorithms.update import StepResult
from rlvla_cli.errors import ConfigError

if TYPE_CHECKING:
    from rlvla_cli.config.actor import ActorConfig, OptimConfig
    from rlvla_cli.config.algorithm import AlgorithmConfig

UpdateFn = Callable[..., dict[str, float]]


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based): linear warm-up from 0 over
    ``warmup_steps``, then ``constant``, ``cosine`` (to 0 at ``total_steps``) or ``linear`` decay."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"unknown lr schedule {schedule!r}")


class FiniteAdamW(torch.optim.AdamW):
    """AdamW that clips the global gradient norm itself and skips the step when it is not finite.

    Used under ZeRO 0 (where DeepSpeed hands the step straight to the torch optimizer). Exposes
    ``overflow`` and ``_global_grad_norm``, which DeepSpeed's engine reads after ``step`` (skipped-step count,
    ``get_global_grad_norm``). ``clip_grad`` 0 disables clipping (the norm is still measured).
    """

    def __init__(self, params, clip_grad: float = 0.0, **kwargs):
        super().__init__(params, **kwargs)
        self.clip_grad = clip_grad
        self.overflow = False
        self._global_grad_norm: float | None = None

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad if self.clip_grad > 0 else float("inf"))
        self._global_grad_norm = float(norm)
        self.overflow = not math.isfinite(self._global_grad_norm)
        if self.overflow:
            return None
        return super().step(closure)


LR_METRICS = {"policy": "train/actor/lr", "value_head": "train/critic/lr"}  # param group name -> metric


def build_optimizer(policy: torch.nn.Module, optim_cfg: OptimConfig, zero_stage: int) -> FiniteAdamW:
    """The trainer's AdamW (``actor.optim``): group ``policy`` (``policy.policy_parameters()``, ``lr``) and group
    ``value_head`` (``policy.value_head_parameters()``, ``value_lr``); empty groups are left out. Each group
    remembers its ``base_lr`` for the schedule. It clips the gradient norm itself only under ZeRO 0 (ZeRO >= 1:
    DeepSpeed clips, see ``deepspeed_config``)."""
    value_params = [p for p in policy.value_head_parameters() if p.requires_grad]
    value_ids = {id(p) for p in value_params}
    policy_params = [p for p in policy.parameters() if p.requires_grad and id(p) not in value_ids]
    groups = [
        {"params": policy_params, "lr": optim_cfg.lr, "base_lr": optim_cfg.lr, "name": "policy"},
        {"params": value_params, "lr": optim_cfg.value_lr, "base_lr": optim_cfg.value_lr, "name": "value_head"},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the policy has no trainable parameters (check LoRA / freezing settings)")
    return FiniteAdamW(groups, clip_grad=optim_cfg.clip_grad if zero_stage == 0 else 0.0, betas=tuple(optim_cfg.betas),
                       eps=optim_cfg.eps, weight_decay=optim_cfg.weight_decay)


def effective_zero_stage(ds_cfg: Any, dp_size: int) -> int:
    """The ZeRO stage the engine runs: 0 on a single trainer rank unless CPU offload of the optimizer or the
    parameters needs ZeRO. With one rank ZeRO partitions nothing (same memory), but stages 1-2 hook every
    gradient into a bucket copy: about 90 us of host time per trainable tensor per micro-batch, ~0.8 s per
    quickstart update of OpenVLA-OFT's ~860 LoRA tensors (docs/measurements/profile_step_h200_training.txt)."""
    if dp_size == 1 and not (ds_cfg.offload_optimizer or ds_cfg.offload_param):
        return 0
    return int(ds_cfg.zero_stage)


def bf16_autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """The trainer's bf16 region. Its cast cache is off: autocast caches the bf16 copy of every fp32 leaf
    parameter (an fp32 policy trained in bf16, OFT's fp32 proprio projector) for the whole region and does not
    notice in-place updates, so an update of
    several optimizer steps inside one region would run every step after the first with the weights of the
    first forward (stale casts: wrong PPO ratios and gradients)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)


def deepspeed_config(actor_cfg: ActorConfig, dp_size: int, on_gpu: bool) -> dict[str, Any]:
    """DeepSpeed config dict from ``actor`` (micro/global batch, optim.clip_grad, deepspeed.*).

    gradient_accumulation_steps = global_batch_size / (micro_batch_size x dp_size); raises ConfigError when it
    does not divide. DeepSpeed's own bf16 mode stays off: it would cast every parameter and buffer of the
    policy (value heads and input buffers included); ``deepspeed.bf16`` instead runs the forward under
    ``torch.autocast`` on GPUs (see Trainer), and the weights keep the dtype ``actor.model.precision`` gave them.
    The ZeRO stage is ``effective_zero_stage``.
    """
    micro, global_batch = actor_cfg.micro_batch_size, actor_cfg.global_batch_size
    if global_batch % (micro * dp_size):
        raise ConfigError(
            f"global_batch_size {global_batch} is not divisible by micro_batch_size {micro} x {dp_size} trainer ranks",
            key="actor.global_batch_size",
            fix=f"use a multiple of {micro * dp_size}",
        )
    ds = actor_cfg.deepspeed
    stage = effective_zero_stage(ds, dp_size)
    zero: dict[str, Any] = {"stage": stage}
    if ds.offload_optimizer and stage > 0:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if ds.offload_param and stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    return {
        "train_batch_size": global_batch,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": global_batch // (micro * dp_size),
        "managed_gradient_accumulation": False,
        # ZeRO >= 1 clips (and detects inf/NaN) inside DeepSpeed; ZeRO 0 leaves both to FiniteAdamW.
        "gradient_clipping": float(actor_cfg.optim.clip_grad) if stage > 0 else 0.0,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "bf16": {"enabled": False},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class Trainer:
    """The DeepSpeed engine of one actor rank and the update around it.

    policy: the VLAPolicy to train (moved to ``device``); actor_cfg / algo_cfg: ``actor`` and ``algorithm``;
    dp_size: trainer ranks (torch.distributed must already be initialised, see ``launcher.init_distributed``);
    total_optimizer_steps: for cosine / linear lr decay; update_fn: the algorithm core's ``update_epoch``.
    """

    def __init__(self, policy: torch.nn.Module, actor_cfg: ActorConfig, algo_cfg: AlgorithmConfig, dp_size: int,
                 device: str, total_optimizer_steps: int, update_fn: UpdateFn | None = None):
        import deepspeed

        self.actor_cfg, self.algo_cfg, self.device = actor_cfg, algo_cfg, torch.device(device)
        self.dp_size, self.total_optimizer_steps = dp_size, total_optimizer_steps
        self.zero_stage = effective_zero_stage(actor_cfg.deepspeed, dp_size)
        optimizer = build_optimizer(policy, actor_cfg.optim, self.zero_stage)
        config = deepspeed_config(actor_cfg, dp_size, self.device.type == "cuda")
        scalars = [p for p in policy.parameters() if p.dim() == 0]
        for param in scalars:  # DeepSpeed's initial broadcast views each parameter as bytes: 0-d cannot
            param.data = param.data.reshape(1)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=policy.to(self.device), optimizer=optimizer, config=config,
        )
        if self.zero_stage < 3:
            for param in scalars:
                param.data = param.data.reshape(())
        self.update_fn = update_fn
        use_autocast = bool(actor_cfg.deepspeed.bf16) and self.device.type == "cuda"
        self.autocast = bf16_autocast(self.device, use_autocast)
        self.optimizer_steps = 0  # applied + skipped optimizer steps (drives the lr schedule)
        self.skipped_steps = 0
        self.consecutive_skipped = 0
        self.generator = torch.Generator().manual_seed(0)

    @property
    def module(self) -> torch.nn.Module:
        return self.engine.module

    def _groups(self) -> list[dict[str, Any]]:
        # The torch optimizer's groups (DeepSpeed's ZeRO wrapper shares them through .optimizer).
        base = getattr(self.optimizer, "optimizer", self.optimizer)
        return base.param_groups

    def _set_lrs(self) -> None:
        factor = lr_factor(self.optimizer_steps, self.actor_cfg.optim.warmup_steps, self.total_optimizer_steps,
                           self.actor_cfg.optim.lr_scheduler)
        for group in self._groups():
            group["lr"] = group["base_lr"] * factor

    def _poison_gradients(self) -> None:
        """Make the accumulated gradients NaN so the optimizer's own overflow path drops them (DeepSpeed clears
        its partitioned buffers there; FiniteAdamW under ZeRO 0) and the skipped step is counted."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        poison = sum((p * float("nan")).sum() for p in params)
        self.engine.backward(poison, scale_wrt_gas=False)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate ``loss``'s gradients locally (the update already divided it by the accumulation steps)."""
        self.engine.backward(loss, scale_wrt_gas=False)

    def step(self, boundary: bool, skip: bool) -> StepResult | None:
        """The ``Stepper`` step (algorithms/update.py): at a global-batch boundary apply (or skip) the DeepSpeed
        step; elsewhere nothing (unmanaged accumulation)."""
        if not boundary:
            return None
        if skip:
            self._poison_gradients()
        self._set_lrs()
        self.engine.step()
        applied = bool(self.engine.was_step_applied())
        self.optimizer_steps += 1
        self.skipped_steps += 0 if applied else 1
        self.consecutive_skipped = 0 if applied else self.consecutive_skipped + 1
        norm = self.engine.get_global_grad_norm()
        return StepResult(float("nan") if norm is None else float(norm), not applied)

    def train(self, batch: Any, global_step: int) -> dict[str, float]:
        """``algorithm.update_epoch`` passes of the update on this rank's shard ``batch`` (a RolloutBatch with
        advantages; the trainer's ``global_batch_size`` is split over the data-parallel ranks by the update).
        Returns this rank's metrics (``train/actor/*``, ``train/critic/*``, ``train/skipped_steps``)."""
        from rlvla_cli.algorithms import train_on_batch

        self.engine.train()
        update = self.update_fn or train_on_batch
        with self.autocast:
            metrics = self._run_update(update, batch, global_step)
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics.update(self.learning_rates())
        metrics["train/consecutive_skipped"] = float(self.consecutive_skipped)
        return metrics

    def _run_update(self, update: UpdateFn, batch: Any, global_step: int) -> dict[str, float]:
        return update(
            self.module, batch.to(self.device), self, self.algo_cfg,
            micro_batch_size=self.actor_cfg.micro_batch_size,
            global_batch_size=self.actor_cfg.global_batch_size,
            data_parallel_size=self.dp_size,
            critic_warmup_active=global_step < self.actor_cfg.optim.critic_warmup_steps,
            generator=self.generator,
        )

    def learning_rates(self) -> dict[str, float]:
        """``train/actor/lr`` (group ``policy``) and ``train/critic/lr`` (group ``value_head``), current values."""
        return {LR_METRICS[g["name"]]: float(g["lr"]) for g in self._groups()}

    def state_dict_extra(self) -> dict[str, Any]:
        """Counters that live outside DeepSpeed's engine checkpoint (one key: DeepSpeed owns the plain names)."""
        return {"rlvla_trainer": {"optimizer_steps": self.optimizer_steps, "skipped_steps": self.skipped_steps,
                                  "consecutive_skipped": self.consecutive_skipped,
                                  "generator": self.generator.get_state()}}

    def save(self, directory: Path) -> None:
        """DeepSpeed engine state of this rank (module, optimizer, ZeRO partitions) + counters (collective)."""
        self.engine.save_checkpoint(str(directory / "engine"), tag="state", client_state=self.state_dict_extra(),
                                    save_latest=False)

    def load(self, directory: Path) -> None:
        """Restore what ``save`` wrote (collective)."""
        _, client = self.engine.load_checkpoint(str(directory / "engine"), tag="state", load_optimizer_states=True,
                                                load_lr_scheduler_states=False)
        if client is None:
            raise FileNotFoundError(f"no engine checkpoint under {directory / 'engine'}")
        state = client["rlvla_trainer"]
        self.optimizer_steps, self.skipped_steps = state["optimizer_steps"], state["skipped_steps"]
        self.consecutive_skipped = state["consecutive_skipped"]
        self.generator.set_state(state["generator"])

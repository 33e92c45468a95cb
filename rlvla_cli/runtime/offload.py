"""Move a component's GPU state to the CPU while another component uses the same GPU, and back.

Collocated placements (``env,rollout,actor: all``) follow the planner's decisions: the trainer offloads its
parameters / gradients / optimizer states during rollouts (``actor.enable_offload``), the rollout copy
offloads its weights during training (``rollout.enable_offload``). ZeRO >= 1 engines use DeepSpeed's own
``offload_states`` / ``reload_states``; ZeRO 0 engines and plain modules move their tensors here.
On a CPU-only run every device is the CPU and the moves are no-ops.
"""

from __future__ import annotations

from typing import Any

import torch


def move_module(module: torch.nn.Module, device: torch.device | str) -> None:
    """Move parameters (and their grads) and buffers of ``module`` to ``device`` in place (``.data`` swap keeps
    the Parameter objects, so optimizers and aliases that hold them stay valid)."""
    device = torch.device(device)
    for param in module.parameters():
        if param.device != device:
            param.data = param.data.to(device, non_blocking=True)
            if param.grad is not None:
                param.grad = param.grad.to(device, non_blocking=True)
    for buffer in module.buffers():
        if buffer.device != device:
            buffer.data = buffer.data.to(device, non_blocking=True)


def move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device | str) -> None:
    """Move every tensor in a torch optimizer's per-parameter state (Adam moments, step) to ``device``."""
    device = torch.device(device)
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.device != device:
                # AdamW keeps `step` on the CPU unless capturable; keep scalars where they are.
                if value.dim() == 0 and key == "step":
                    continue
                state[key] = value.to(device, non_blocking=True)


class EngineOffloader:
    """Offload / reload a DeepSpeed engine's states (params, grads, optimizer) around rollouts.

    ``enabled`` False makes both calls no-ops (the planner decided no offload, or a CPU-only run).
    """

    def __init__(self, engine: Any, device: torch.device | str, enabled: bool):
        self.engine, self.device = engine, torch.device(device)
        self.enabled = bool(enabled) and self.device.type != "cpu"
        self.offloaded = False

    def _zero_stage(self) -> int:
        return int(self.engine.zero_optimization_stage())

    def offload(self) -> None:
        if not self.enabled or self.offloaded:
            return
        if self._zero_stage() > 0:
            self.engine.offload_states(pin_memory=True, non_blocking=False)
        else:
            move_module(self.engine.module, "cpu")
            move_optimizer_state(self.engine.optimizer, "cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.offloaded = True

    def reload(self) -> None:
        if not self.enabled or not self.offloaded:
            return
        if self._zero_stage() > 0:
            self.engine.reload_states(non_blocking=False)
        else:
            move_module(self.engine.module, self.device)
            move_optimizer_state(self.engine.optimizer, self.device)
        self.offloaded = False


class ModuleOffloader:
    """Offload / reload a plain module (the rollout copy of the policy) between ``device`` and the CPU."""

    def __init__(self, module: torch.nn.Module, device: torch.device | str, enabled: bool):
        self.module, self.device = module, torch.device(device)
        self.enabled = bool(enabled) and self.device.type != "cpu"
        self.offloaded = False

    def offload(self) -> None:
        if self.enabled and not self.offloaded:
            move_module(self.module, "cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.offloaded = True

    def reload(self) -> None:
        if self.enabled and self.offloaded:
            move_module(self.module, self.device)
            self.offloaded = False

"""The rollout batch the trainer receives, and its split into (shuffled) micro-batches.

Time-major: T chunk steps per env, B envs, C actions per chunk, A action dims, V value outputs per observation
(1 = one value per chunk, C = one per action). Step ``t`` of env ``b`` is: the policy saw observation ``o_t``,
predicted a chunk of C actions, the env executed them and returned C rewards / terminations / truncations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch

TensorFn = Callable[[torch.Tensor, int], torch.Tensor]  # (tensor, its env axis) -> tensor


def _env_axis(axis: int) -> dict:
    """Field metadata: the axis of B (envs) in that field's tensors (``forward_inputs``: in each value)."""
    return {"env_axis": axis}


def _field_values(obj) -> dict:
    """``{name: value}`` of dataclass ``obj``'s fields (shallow, unlike ``dataclasses.asdict``)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _map_values(values: dict, fn: TensorFn, axis_of: Callable[[str], int] = lambda _: 0) -> dict:
    """``{name: fn(tensor, axis_of(name))}`` (dict values mapped entry by entry; None kept)."""
    out = {}
    for name, value in values.items():
        if isinstance(value, dict):
            out[name] = {k: fn(v, axis_of(name)) for k, v in value.items()}
        else:
            out[name] = None if value is None else fn(value, axis_of(name))
    return out


@dataclass
class RolloutBatch:
    """One rollout of B envs for T chunk steps (what ``compute_advantages`` and ``update_epoch`` consume).

    forward_inputs: ``{name: [T, B, ...]}``: what ``policy.evaluate`` needs to recompute the log-probs of the
        actions taken (action tokens, or the flow chain and its noise indices); taken from ``PolicyOutput``.
    old_logprobs: float ``[T, B, C, A]``: log-probs of the taken actions under the rollout policy (token level).
    rewards: float ``[T, B, C]``: reward after each executed action.
    terminations: bool ``[T, B, C]``: the episode ended in a terminal state after that action (no bootstrap).
    truncations: bool ``[T, B, C]``: the episode was cut by a time limit after that action (bootstrap from
        ``bootstrap_values``). An env that auto-resets starts a new episode at step t + 1.
    loss_mask: bool ``[T, B]``: steps that count in the loss and statistics (``mask_after_first_done`` for envs
        without auto-reset; GRPO group filtering clears more).
    old_values: float ``[T, B, V]`` or None: V(o_t) from the rollout (GAE and value clipping need it).
    bootstrap_values: float ``[T, B, V]`` or None: V(final observation) where the episode ended inside step t
        (truncated, or terminated: ``algorithm.bootstrap_type`` picks which are used), 0 elsewhere (only column 0,
        the value of that observation, is used).
    last_values: float ``[B, V]`` or None: V(o_T), the observation after the last step (column 0 is used).
    advantages / returns: filled by ``compute_advantages``; ``[T, B]`` (reward_type chunk_level) or
        ``[T, B, C]`` (action_level). Returns are the value targets (GRPO: the episode score).
    loss_weights: float ``[T, B]`` or None: per-sample loss weights (``algorithm.loss_agg: episode_weighted``,
        filled by ``compute_advantages``; see ``aggregation.py``); None: masked mean.

    Each field declares its env axis once (``env_axis`` metadata); ``split``, ``cat`` and ``to`` follow it.
    """

    forward_inputs: dict[str, torch.Tensor] = field(metadata=_env_axis(1))
    old_logprobs: torch.Tensor = field(metadata=_env_axis(1))
    rewards: torch.Tensor = field(metadata=_env_axis(1))
    terminations: torch.Tensor = field(metadata=_env_axis(1))
    truncations: torch.Tensor = field(metadata=_env_axis(1))
    loss_mask: torch.Tensor = field(metadata=_env_axis(1))
    old_values: torch.Tensor | None = field(default=None, metadata=_env_axis(1))
    bootstrap_values: torch.Tensor | None = field(default=None, metadata=_env_axis(1))
    last_values: torch.Tensor | None = field(default=None, metadata=_env_axis(0))
    advantages: torch.Tensor | None = field(default=None, metadata=_env_axis(1))
    returns: torch.Tensor | None = field(default=None, metadata=_env_axis(1))
    loss_weights: torch.Tensor | None = field(default=None, metadata=_env_axis(1))

    @property
    def num_steps(self) -> int:
        """T."""
        return self.rewards.shape[0]

    @property
    def num_envs(self) -> int:
        """B."""
        return self.rewards.shape[1]

    @property
    def num_chunks(self) -> int:
        """C."""
        return self.rewards.shape[2]

    @staticmethod
    def env_axis(name: str) -> int:
        """The axis of B in field ``name``'s tensors."""
        return next(f.metadata["env_axis"] for f in fields(RolloutBatch) if f.name == name)

    def validate(self) -> RolloutBatch:
        """Check every tensor's shape and dtype against T, B, C, A; raises ``ValueError`` naming the field."""
        t, b, c = self.rewards.shape if self.rewards.dim() == 3 else (None, None, None)
        if t is None:
            raise ValueError(f"rewards must be [T, B, C], got {tuple(self.rewards.shape)}")
        _expect("old_logprobs", self.old_logprobs, (t, b, c, None))
        for name in ("terminations", "truncations"):
            _expect(name, getattr(self, name), (t, b, c), torch.bool)
        _expect("loss_mask", self.loss_mask, (t, b), torch.bool)
        for name, tensor in self.forward_inputs.items():
            _expect(f"forward_inputs[{name!r}]", tensor, (t, b), prefix=True)
        v = None
        for name in ("old_values", "bootstrap_values"):
            tensor = getattr(self, name)
            if tensor is not None:
                _expect(name, tensor, (t, b, v))
                v = tensor.shape[-1]
        if self.last_values is not None:
            _expect("last_values", self.last_values, (b, v))
            v = self.last_values.shape[-1]
        if v is not None and v not in (1, c):
            raise ValueError(f"value outputs V={v} must be 1 (per chunk) or C={c} (per action)")
        for name in ("advantages", "returns"):
            tensor = getattr(self, name)
            if tensor is not None and tuple(tensor.shape) not in ((t, b), (t, b, c)):
                raise ValueError(f"{name} must be [T, B] or [T, B, C] = {(t, b, c)}, got {tuple(tensor.shape)}")
        if self.loss_weights is not None:
            _expect("loss_weights", self.loss_weights, (t, b))
        return self

    def _map(self, fn: TensorFn) -> RolloutBatch:
        return RolloutBatch(**_map_values(_field_values(self), fn, self.env_axis))

    def to(self, device: torch.device | str) -> RolloutBatch:
        """A copy with every tensor on ``device``."""
        return self._map(lambda x, _axis: x.to(device))

    def split(self, parts: int) -> list[RolloutBatch]:
        """``parts`` equal slices of the env axis B (views); raises ``ValueError`` when B does not divide."""
        if parts < 1 or self.num_envs % parts:
            raise ValueError(f"{self.num_envs} envs do not split into {parts} equal parts")
        size = self.num_envs // parts
        return [self._map(lambda x, axis, i=i: x.narrow(axis, i * size, size)) for i in range(parts)]

    @classmethod
    def cat(cls, batches: list[RolloutBatch]) -> RolloutBatch:
        """Batches side by side along B (e.g. rollout epochs: independent trajectories); a field None in the
        first batch stays None. The inverse of ``split``."""
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        out = {}
        for f in fields(cls):
            axis, value = f.metadata["env_axis"], getattr(first, f.name)
            if isinstance(value, dict):
                out[f.name] = {k: torch.cat([b.forward_inputs[k] for b in batches], axis) for k in value}
            else:
                out[f.name] = None if value is None else torch.cat([getattr(b, f.name) for b in batches], axis)
        return cls(**out).validate()

    def flatten(self) -> FlatBatch:
        """Samples ``N = T * B`` in time-major order (sample ``t * B + b``); needs advantages filled."""
        if self.advantages is None:
            raise ValueError("advantages are not computed yet: call compute_advantages(batch, cfg) first")
        n = self.num_steps * self.num_envs
        kept = {f.name: getattr(self, f.name) for f in fields(FlatBatch)}
        return FlatBatch(**_map_values(kept, lambda x, _axis: x.reshape(n, *x.shape[2:])))


@dataclass
class FlatBatch:
    """Samples ``[N, ...]`` (a flattened ``RolloutBatch`` or a micro-batch of it): the ``RolloutBatch`` fields of
    the same names, with (T, B) merged into N.

    forward_inputs ``{name: [N, ...]}``; old_logprobs ``[N, C, A]``; advantages / returns ``[N]`` or ``[N, C]``;
    loss_mask bool ``[N]``; old_values ``[N, V]`` or None; loss_weights float ``[N]`` or None.
    """

    forward_inputs: dict[str, torch.Tensor]
    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    loss_mask: torch.Tensor
    old_values: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    loss_weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.old_logprobs.shape[0]

    def to(self, device: torch.device | str) -> FlatBatch:
        """A copy with every tensor on ``device`` (non-blocking from pinned memory)."""
        return FlatBatch(**_map_values(_field_values(self), lambda x, _axis: x.to(device, non_blocking=True)))

    def select(self, idx: torch.Tensor) -> FlatBatch:
        """The samples at ``idx`` (int64 ``[n]``)."""
        return FlatBatch(**_map_values(_field_values(self), lambda x, _axis: x[idx.to(x.device)]))


def split_indices(
    num_samples: int,
    global_batch_size: int,
    micro_batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> list[list[torch.Tensor]]:
    """Sample indices grouped as ``[global batch][micro-batch] -> int64 [<= micro_batch_size]``.

    Every index in ``range(num_samples)`` appears exactly once. The last global batch and the last micro-batch
    of each global batch are smaller when the sizes do not divide.
    """
    if micro_batch_size < 1 or global_batch_size < 1:
        raise ValueError(f"batch sizes must be >= 1 (global {global_batch_size}, micro {micro_batch_size})")
    order = torch.randperm(num_samples, generator=generator) if shuffle else torch.arange(num_samples)
    return [list(chunk.split(micro_batch_size)) for chunk in order.split(global_batch_size)]


def _expect(
    name: str, tensor: torch.Tensor, shape: tuple, dtype: torch.dtype | None = None, prefix: bool = False
) -> None:
    """Raise ``ValueError`` unless ``tensor`` has ``shape`` (None = any size; ``prefix``: leading dims only)."""
    actual = tuple(tensor.shape)
    head = actual[: len(shape)] if prefix else actual
    ok = len(head) == len(shape) and all(want is None or want == got for want, got in zip(shape, head, strict=True))
    if not ok:
        wanted = ", ".join("?" if s is None else str(s) for s in shape) + (", ..." if prefix else "")
        raise ValueError(f"RolloutBatch.{name} must be [{wanted}], got {list(actual)}")
    if dtype is not None and tensor.dtype != dtype:
        raise ValueError(f"RolloutBatch.{name} must be {dtype}, got {tensor.dtype}")

"""Aggregation levels (``reward_type``, ``logprob_type``, ``entropy_type``) and masked reductions.

Shapes: T rollout steps (one chunk each), B envs, C actions per chunk, A action dims, N = T * B samples.

- ``token_level``: one term per action dimension ``[N, C, A]``.
- ``action_level``: log-probs / entropies summed over A -> ``[N, C]``; rewards per executed action, GAE over
  the flattened action sequence ``[T * C, B]``.
- ``chunk_level``: summed over C and A -> ``[N]``; rewards summed per chunk, GAE over chunks ``[T, B]``.
"""

from __future__ import annotations

import torch

TOKEN, ACTION, CHUNK = "token_level", "action_level", "chunk_level"


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is true; ``mask`` has x's leading dims and is broadcast over the rest.

    An all-false mask gives 0 (not NaN), so an empty micro-batch contributes nothing.
    """
    if mask is None:
        return x.mean()
    weights = _expand_mask(mask, x).to(x.dtype)
    return (x * weights).sum() / weights.sum().clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Population variance of ``x`` over masked entries (0 for an empty mask)."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def _expand_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask [N, ...k dims]`` -> broadcast to ``like``'s shape by adding trailing dims."""
    while mask.dim() < like.dim():
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)


def reduce_per_level(x: torch.Tensor, level: str) -> torch.Tensor:
    """Sum per-dimension terms ``[N, C, A]`` to the level: token ``[N, C, A]``, action ``[N, C]``, chunk ``[N]``."""
    if level == TOKEN:
        return x
    if level == ACTION:
        return x.sum(-1)
    if level == CHUNK:
        return x.sum((-2, -1))
    raise ValueError(f"unknown level {level!r}; valid: {TOKEN}, {ACTION}, {CHUNK}")


def broadcast_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-chunk ``[N]`` or per-action ``[N, C]`` advantages -> the shape of level-reduced log-probs ``like``.

    ``like`` is ``[N]``, ``[N, C]`` or ``[N, C, A]``. Per-action advantages cannot be broadcast to a chunk-level
    ``[N]`` ratio (the config validator forbids that combination).
    """
    if advantages.dim() > like.dim():
        raise ValueError(
            f"per-action advantages {tuple(advantages.shape)} cannot drive a chunk-level ratio {tuple(like.shape)}"
        )
    return _expand_mask(advantages, like)


def reduce_rewards(rewards: torch.Tensor, reward_type: str) -> torch.Tensor:
    """Rewards ``[T, B, C]`` -> ``[T, B]`` (chunk_level: summed over the chunk) or ``[T, B, C]`` (action_level)."""
    if reward_type == CHUNK:
        return rewards.sum(-1)
    if reward_type == ACTION:
        return rewards
    raise ValueError(f"unknown reward_type {reward_type!r}; valid: {ACTION}, {CHUNK}")


def reduce_flags(flags: torch.Tensor, reward_type: str) -> torch.Tensor:
    """Done flags ``[T, B, C]`` -> ``[T, B]`` (chunk_level: any within the chunk) or unchanged (action_level)."""
    return flags.any(-1) if reward_type == CHUNK else flags


def flatten_action_steps(x: torch.Tensor) -> torch.Tensor:
    """Time-major chunks ``[T, B, C, ...]`` -> one step per executed action ``[T * C, B, ...]``.

    Row ``t * C + c`` is action ``c`` of chunk ``t``: the order in which the env executed them, so a recursion
    over the first dim (GAE) runs through the actions in time order.
    """
    t, b, c = x.shape[:3]
    return x.transpose(1, 2).reshape(t * c, b, *x.shape[3:])


def unflatten_action_steps(x: torch.Tensor, num_chunks: int) -> torch.Tensor:
    """Inverse of ``flatten_action_steps``: ``[T * C, B, ...]`` -> ``[T, B, C, ...]``."""
    tc, b = x.shape[:2]
    return x.reshape(tc // num_chunks, num_chunks, b, *x.shape[2:]).transpose(1, 2)


def value_pred_and_target(values: torch.Tensor, returns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair value predictions ``[N, V]`` with level-shaped returns ``[N]`` or ``[N, C]``; both results one shape.

    - chunk-level returns ``[N]``: the value of the chunk's observation, ``values[:, 0]``.
    - action-level returns ``[N, C]`` with per-action values (V = C): elementwise.
    - action-level returns with one value per chunk (V = 1): that value against the return of the chunk's
      first action (the one taken from the observation the value was predicted for).
    """
    if returns.dim() == 1:
        return values[:, 0], returns
    if values.shape[-1] == returns.shape[-1]:
        return values, returns
    if values.shape[-1] == 1:
        return values[:, 0], returns[:, 0]
    raise ValueError(f"values {tuple(values.shape)} do not match returns {tuple(returns.shape)} (V must be 1 or C)")


def per_action_values(values: torch.Tensor, num_chunks: int) -> torch.Tensor:
    """Values ``[T, B, V]`` with V in {1, C} -> ``[T, B, C]`` (V = 1 is repeated over the chunk)."""
    if values.shape[-1] == num_chunks:
        return values
    if values.shape[-1] == 1:
        return values.expand(*values.shape[:-1], num_chunks)
    raise ValueError(f"values have V={values.shape[-1]} outputs; expected 1 or C={num_chunks}")


def mask_after_first_done(dones: torch.Tensor) -> torch.Tensor:
    """Loss mask for runs without auto-reset: step t counts iff no episode end happened at a step before t.

    dones: bool ``[T, B]`` or ``[T, B, C]`` (any within the chunk counts). Returns bool ``[T, B]``; the step in
    which the episode ends is kept, every later step (the env idles) is masked out.
    """
    if dones.dim() == 3:
        dones = dones.any(-1)
    ended_before = torch.cumsum(dones.long(), dim=0) - dones.long()
    return ended_before == 0

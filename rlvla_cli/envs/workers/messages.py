"""The env-worker protocol: what the pool and a worker send each other through the pipe (small, picklable).

Driver -> worker: ``Attach`` once after ``Spec``, then ``Reset`` / ``Step`` per stage, ``Close`` at the end.
Worker -> driver: ``Spec`` once after building its env groups, ``Done`` per ``Reset`` / ``Step``, ``Failed``
instead of any reply when something raised. Tensors never travel here: they sit in the shared-memory blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvla_cli.envs.base import ObsSpec


@dataclass(frozen=True)
class Attach:
    """The shared-memory blocks of this worker, one ``(segment name, layout)`` per stage."""

    blocks: tuple[tuple[str, dict], ...]


@dataclass(frozen=True)
class Reset:
    """Reset stage ``stage`` with ``seed``; ``explicit_ids``: the initial states are in the block's
    ``reset_state_ids`` buffer."""

    stage: int
    seed: int | None
    explicit_ids: bool


@dataclass(frozen=True)
class Step:
    """Run one chunk of ``chunk`` actions (read from the block's ``actions`` buffer) on stage ``stage``."""

    stage: int
    chunk: int


@dataclass(frozen=True)
class Close:
    """Stop serving and exit."""


@dataclass(frozen=True)
class Spec:
    """The observation spec and action width of the worker's envs (sizes the shared-memory blocks)."""

    obs_spec: ObsSpec
    action_dim: int


@dataclass(frozen=True)
class Done:
    """Stage ``stage`` finished its ``Reset`` / ``Step``; ``has_final``: some env's episode ended (its final
    observation and episode metrics were written)."""

    stage: int
    has_final: bool = False


@dataclass(frozen=True)
class Failed:
    """The worker raised: ``summary`` (type and message), ``traceback``; ``user_error``: the class name when it
    was a ``UserError`` (re-raised as that class in the driver, with ``message``), else None."""

    summary: str
    traceback: str
    user_error: str | None
    message: str


ToWorker = Attach | Reset | Step | Close
FromWorker = Spec | Done | Failed

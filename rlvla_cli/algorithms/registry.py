"""Name -> function registries for advantage estimators (``adv_type``) and losses (``loss_type``).

Registering a name twice raises; looking up an unknown name raises a ``UserError`` listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from rlvla_cli.errors import UserError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A named table of functions, filled with the ``register`` decorator.

    ``config_key`` is the config key the names come from (``algorithm.adv_type``), used in error messages.
    """

    def __init__(self, kind: str, config_key: str):
        self.kind = kind
        self.config_key = config_key
        self._table: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: ``@ADVANTAGES.register("gae")``. A second registration under one name raises."""

        def decorator(fn: F) -> F:
            if name in self._table:
                raise KeyError(f"{self.kind} `{name}` is already registered (by {self._table[name].__qualname__})")
            self._table[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        """The function registered under ``name``; ``UserError`` listing the valid names otherwise."""
        try:
            return self._table[name]
        except KeyError:
            valid = ", ".join(sorted(self._table))
            raise UserError(
                f"unknown {self.kind} `{name}`; valid: {valid}", key=self.config_key, fix=f"use one of: {valid}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        return name in self._table


ADVANTAGES: Registry = Registry("advantage estimator", "algorithm.adv_type")
LOSSES: Registry = Registry("loss", "algorithm.loss_type")

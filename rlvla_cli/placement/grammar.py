"""Placement grammar: parse ``cluster.component_placement`` (RLinf-compatible) into GPU and process ranks.

A placement maps comma-separated component names to GPU ranks, optionally followed by process ranks::

    cluster:
      component_placement:
        env,rollout: 0-3        # two components share GPUs 0..3, one process per GPU each
        actor: 0-3:0-7          # 8 actor processes on GPUs 0..3 (2 per GPU)
        rollout: 4              # a single integer is a one-GPU range
        env: 0,2,4-5            # lists of integers and ranges
        actor: all              # every GPU of every node

GPU ranks count across nodes in order: global rank ``r`` lives on node ``r // gpus_per_node`` as local GPU
``r % gpus_per_node``. Every error is a :class:`~rlvla_cli.errors.ConfigError` naming
``cluster.component_placement.<key>``, what is wrong and the fix.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from rlvla_cli.errors import ConfigError

COMPONENTS: tuple[str, ...] = ("env", "rollout", "actor")
"""Every component a placement must give GPUs to, in the order they are reported."""

_KEY_PREFIX = "cluster.component_placement"
_RANGE_RE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class ComponentSpec:
    """One component's parsed placement.

    gpu_ranks: global GPU ranks, ascending, no duplicates.
    num_processes: processes of this component (``len(gpu_ranks)`` without ``:process ranks``).
    key: the ``component_placement`` key it came from (for error messages).
    """

    gpu_ranks: tuple[int, ...]
    num_processes: int
    key: str

    @property
    def processes_per_gpu(self) -> int:
        return self.num_processes // len(self.gpu_ranks)


def _key_path(key: str) -> str:
    return f"{_KEY_PREFIX}.{key}"


def parse_component_names(key: str) -> list[str]:
    """Split a placement key like ``"env,rollout"`` into known component names (did-you-mean on typos)."""
    names = [part.strip() for part in str(key).split(",")]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ConfigError(
                "an empty component name in the key", key=_key_path(key),
                fix=f"write the components separated by single commas, e.g. `{','.join(COMPONENTS)}`",
            )
        if name not in COMPONENTS:
            close = difflib.get_close_matches(name, COMPONENTS, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ConfigError(
                f"unknown component `{name}`", key=_key_path(key),
                fix=f"{hint}use component names from {', '.join(COMPONENTS)}",
            )
        if name in seen:
            raise ConfigError(
                f"component `{name}` is listed twice in the key", key=_key_path(key), fix="name it once"
            )
        seen.add(name)
    return names


def parse_rank_list(text: str, limit: int, *, key: str, what: str = "GPU rank") -> list[int]:
    """Parse ``"4"``, ``"0-3"``, ``"0,2,4-5"`` or ``"all"`` into ascending ranks below ``limit``.

    ``limit`` is the number of ranks that exist (GPUs in the cluster); ``what`` names them in errors.
    """
    text = text.strip()
    if text == "all":
        return list(range(limit))
    ranks: list[int] = []
    for item in text.split(","):
        item = item.strip()
        match = _RANGE_RE.match(item)
        if not match:
            raise ConfigError(
                f"cannot read `{item}` in `{text}` as a {what}, range or list", key=_key_path(key),
                fix="write an integer (`4`), a range (`0-3`), a list (`0,2,4-5`) or `all`",
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ConfigError(
                f"range `{item}` runs backwards", key=_key_path(key), fix=f"write it as `{last}-{first}`"
            )
        for rank in range(first, last + 1):
            if rank >= limit:
                raise ConfigError(
                    f"{what} {rank} is out of range: only {limit} exist (0-{limit - 1})", key=_key_path(key),
                    fix=f"use {what}s below {limit}, or add nodes/GPUs (`cluster.num_nodes`, "
                    "`cluster.num_gpus_per_node`, or --gpus/--nodes)",
                )
            if rank in ranks:
                raise ConfigError(f"{what} {rank} is listed twice in `{text}`", key=_key_path(key), fix="list it once")
            ranks.append(rank)
    return sorted(ranks)


def parse_placement_value(value: str | int, total_gpus: int, *, key: str) -> tuple[list[int], int]:
    """Parse one placement value into (GPU ranks, number of processes).

    ``"0-3:0-7"`` means process ranks 0..7 on GPUs 0..3: the processes are divided evenly over the GPUs,
    so their count must be a multiple of the GPU count; process ranks must be ``0..n-1``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(
            f"expected GPU ranks as text or an integer, got {type(value).__name__} `{value}`", key=_key_path(key),
            fix="write e.g. `0-3`, `4`, `0,2,4-5` or `all`",
        )
    text = str(value).strip()
    if not text:
        raise ConfigError("no GPU ranks given", key=_key_path(key), fix="give GPUs, e.g. `0-3` or `all`")
    if text.count(":") > 1:
        raise ConfigError(
            f"`{text}` has more than one `:`", key=_key_path(key), fix="write `GPU ranks:process ranks`, e.g. `0-3:0-7`"
        )
    gpu_text, _, proc_text = text.partition(":")
    if total_gpus <= 0:
        raise ConfigError(
            "the cluster has no GPUs", key="cluster.num_gpus_per_node",
            fix="set `cluster.num_gpus_per_node` (or --gpus) to at least 1",
        )
    gpu_ranks = parse_rank_list(gpu_text, total_gpus, key=key)
    if not proc_text:
        return gpu_ranks, len(gpu_ranks)
    if proc_text.strip() == "all":
        raise ConfigError(
            "process ranks cannot be `all`", key=_key_path(key), fix="write a range such as `0-7` after the `:`"
        )
    proc_ranks = parse_rank_list(proc_text, 1 << 20, key=key, what="process rank")
    if proc_ranks != list(range(len(proc_ranks))):
        raise ConfigError(
            f"process ranks `{proc_text}` must be 0..n-1 without gaps", key=_key_path(key),
            fix=f"write `{gpu_text}:0-{len(proc_ranks) - 1}`",
        )
    num_proc, num_gpu = len(proc_ranks), len(gpu_ranks)
    if num_proc % num_gpu != 0:
        lower, upper = (num_proc // num_gpu) * num_gpu, (num_proc // num_gpu + 1) * num_gpu
        options = " or ".join(f"`{gpu_text}:0-{n - 1}`" for n in (lower, upper) if n > 0)
        raise ConfigError(
            f"{num_proc} processes cannot be divided evenly over {num_gpu} GPUs", key=_key_path(key),
            fix=f"use a multiple of {num_gpu} processes, e.g. {options}",
        )
    return gpu_ranks, num_proc


def parse_component_placement(component_placement: dict[str, str | int], total_gpus: int) -> dict[str, ComponentSpec]:
    """Parse a whole ``component_placement`` mapping into one :class:`ComponentSpec` per component.

    Every component of :data:`COMPONENTS` must appear in exactly one key; the result is ordered like
    :data:`COMPONENTS`.
    """
    if not component_placement:
        raise ConfigError(
            "is empty: no component has a GPU", key=_KEY_PREFIX,
            fix="give every component GPUs, e.g. `env,rollout,actor: all`",
        )
    specs: dict[str, ComponentSpec] = {}
    for key, value in component_placement.items():
        names = parse_component_names(key)
        gpu_ranks, num_proc = parse_placement_value(value, total_gpus, key=key)
        for name in names:
            if name in specs:
                raise ConfigError(
                    f"component `{name}` is placed twice (also in `{specs[name].key}`)", key=_key_path(key),
                    fix=f"keep `{name}` in one key only",
                )
            specs[name] = ComponentSpec(gpu_ranks=tuple(gpu_ranks), num_processes=num_proc, key=str(key))
    missing = [name for name in COMPONENTS if name not in specs]
    if missing:
        raise ConfigError(
            f"component(s) {', '.join(f'`{m}`' for m in missing)} have no GPU", key=_KEY_PREFIX,
            fix=f"add them to a key, e.g. `{','.join(missing)}: all` or add them to an existing key like "
            f"`{next(iter(component_placement))},{','.join(missing)}`",
        )
    return {name: specs[name] for name in COMPONENTS}

"""No import cycle between the packages of ``rlvla_cli`` (its first-level packages and modules).

Every import statement counts, also the ones inside functions (a lazy import hides a circle from Python's
import machinery, not from the design): ``algorithms`` may import ``models``, but then nothing ``models``
imports, directly or through other packages, may import ``algorithms``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rlvla_cli"


def unit_of(module: str) -> str | None:
    """The first-level package or module of ``rlvla_cli`` a dotted module name belongs to (None: outside)."""
    parts = module.split(".")
    if parts[0] != "rlvla_cli" or len(parts) < 2:
        return None
    return parts[1]


def imported_modules(tree: ast.AST, module: str) -> set[str]:
    """Dotted names of every module ``tree`` imports (relative imports resolved against ``module``), at any
    depth of the file. ``from package import name`` counts as ``package.name`` (``name`` may be a module)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``{unit: {units it imports}}`` over every ``.py`` file under ``root`` (self-edges dropped)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] + ["__init__"]  # relative imports in a package's __init__ resolve to the package
        module = ".".join(parts)
        source = unit_of(module)
        if source is None or source == "__init__":
            continue
        graph[source]
        for target in imported_modules(ast.parse(path.read_text(), str(path)), module):
            unit = unit_of(target)
            if unit is not None and unit != source and unit != "__init__":
                graph[source].add(unit)
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan), each sorted; sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def edges_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    return [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]


def test_the_checker_finds_a_lazy_circle(tmp_path):
    """The checker itself: a function-level import that closes a circle is found; a one-way import is not."""
    pkg = tmp_path / "rlvla_cli"
    for name in ("a", "b", "c"):
        (pkg / name).mkdir(parents=True)
        (pkg / name / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from rlvla_cli.b import y\n")
    (pkg / "b" / "y.py").write_text("def f():\n    from rlvla_cli.a.x import g\n")
    (pkg / "c" / "z.py").write_text("from ..a import x\n")
    graph = package_graph(pkg)
    assert graph["c"] == {"a"}
    assert cycles(graph) == [["a", "b"]]


def test_no_import_cycle_between_packages():
    graph = package_graph()
    assert {"algorithms", "config", "envs", "evaluation", "models", "placement", "runtime"} <= set(graph)
    found = cycles(graph)
    assert not found, "import cycles between packages: " + "; ".join(
        ", ".join(edges_within(graph, component)) for component in found
    )

"""Imports run one way: down the layer order of docs/design.md §2a, and never in a circle.

Every module of the package is parsed with ``ast``; every ``import``/``from … import`` in it counts,
at module level and inside functions alike (a function-level import is a dependency all the same,
only a later one). Relative imports are resolved against the importing module's package.
``from pkg import name`` counts as an import of the module ``pkg.name`` when that is a module, else
of ``pkg``. Two things are left out, on purpose:

- imports inside an ``if TYPE_CHECKING:`` block (they never run; they exist for annotations);
- the implicit import of parent packages (importing ``sapkit.io.nifti`` runs ``sapkit/__init__.py``
  and ``sapkit/io/__init__.py`` first). Every ``__init__`` holds a docstring only, except the
  package's own (``__version__``, ``load_config``, ``SapkitError``) and ``sapkit.metrics`` (which
  re-exports its private modules), and those are placed in the order like any module.

The test fails on (a) any import from a module into a higher layer or a later stage, and (b) any
cycle between modules, listing every offending edge or cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sapkit"

# docs/design.md §2a, lowest first. A module may import its own layer or any layer before it.
# Entries are module-name prefixes; the longest prefix that names a module decides its layer, so
# ``sapkit.io.yaml_io`` and ``sapkit.io.atomic`` sit below config while the rest of io sits above it.
# ``sapkit`` (the package's __init__) re-exports load_config and SapkitError, so it sits with config.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("sapkit.errors", "sapkit.label_maps")),
    ("validation", ("sapkit.validation",)),
    ("config loader", ("sapkit._config_loader",)),
    ("file primitives", ("sapkit.io.yaml_io", "sapkit.io.atomic", "sapkit.io.output_paths")),
    ("config", ("sapkit.config", "sapkit._config_raw", "sapkit")),
    ("io", ("sapkit.io",)),
    ("imaging", ("sapkit.imaging",)),
    ("metrics", ("sapkit.metrics",)),
    ("jobs", ("sapkit.jobs",)),
    ("data", ("sapkit.data",)),
    ("preprocessing", ("sapkit.preprocessing",)),
    ("labels", ("sapkit.labels",)),
    ("networks", ("sapkit.networks",)),
    ("inference", ("sapkit.inference",)),
    ("training", ("sapkit.training",)),
    ("evaluation", ("sapkit.evaluation",)),
    ("plotting", ("sapkit.plotting",)),
    ("pipeline", ("sapkit.pipeline",)),
    ("cli", ("sapkit.cli",)),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix that names ``module`` (or its package)."""
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer of docs/design.md §2a: add it to LAYERS and the doc")
    return best


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(target: str) -> str | None:
    """The module of the package that ``target`` names (a module, or an attribute of one)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def imports_of(name: str) -> list[tuple[str, int]]:
    """(imported sapkit module, line) for every import in module ``name``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        for target in targets:
            if target.split(".")[0] != "sapkit":
                continue
            module = _resolve(target)
            if module and module != name and (module, node.lineno) not in found:
                found.append((module, node.lineno))
    return found


GRAPH: dict[str, list[tuple[str, int]]] = {name: imports_of(name) for name in MODULES}


def _layer_label(index: int) -> str:
    return LAYERS[index][0]


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_no_import_into_a_higher_layer_or_later_stage():
    offences = []
    for name, edges in sorted(GRAPH.items()):
        here = layer_of(name)
        for module, line in edges:
            there = layer_of(module)
            if there > here:
                offences.append(f"{MODULES[name].relative_to(ROOT)}:{line}: {name} ({_layer_label(here)}) "
                                f"imports {module} ({_layer_label(there)})")
    assert not offences, (f"{len(offences)} import(s) against the layer order of docs/design.md §2a:\n"
                          + "\n".join(offences))


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the first module of a strongly connected component (breadth-first, shortest)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return component


def test_no_import_cycles_between_modules():
    graph = {name: {module for module, _ in edges} for name, edges in GRAPH.items()}
    cycles = [f"{' → '.join(_cycle_path(graph, c))}   (modules on cycles with it: {', '.join(c)})"
              for c in _strongly_connected(graph)]
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(cycles)


def test_the_checker_sees_what_it_must():
    # function-level and relative imports both count, and TYPE_CHECKING blocks do not
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sapkit.cli import train\n"
              "def f():\n    from ..training import engine\n    import sapkit.plotting.colors\n")
    nodes = list(_import_nodes(ast.parse(source)))
    assert sorted(type(n).__name__ for n in nodes) == ["Import", "ImportFrom", "ImportFrom"]
    assert layer_of("sapkit.cli.train") > layer_of("sapkit.pipeline.reproduce") > layer_of("sapkit.io.nifti")
    assert layer_of("sapkit") == layer_of("sapkit.config")

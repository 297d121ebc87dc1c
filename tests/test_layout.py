"""The package layout rules (docs/design.md): stage subpackages, short modules, no cycles, no private reach-ins."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sapkit"
MAX_LINES = 400  # "no module over ~400 lines"
TOP_LEVEL_MODULES = {"__init__", "config", "_config_loader", "_config_raw", "errors", "validation", "label_maps"}
SUBPACKAGES = {"io", "data", "labels", "networks", "training", "inference", "metrics", "evaluation", "plotting",
               "pipeline", "cli", "preprocessing", "jobs", "imaging"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path, name: str) -> list[tuple[str, list[str], bool]]:
    """(imported module, imported names, at module level) for every sapkit import in a file."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    top_level = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] == "sapkit":
                found.append((module, [a.name for a in node.names], id(node) in top_level))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sapkit":
                    found.append((alias.name, [], id(node) in top_level))
    return found


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PKG / parts[1]).is_dir()) else ""


def test_every_module_lives_in_a_stage_subpackage():
    loose = {p.stem for p in PKG.glob("*.py")} - TOP_LEVEL_MODULES
    assert not loose, f"modules outside a subpackage: {sorted(loose)}"
    packages = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= SUBPACKAGES, sorted(packages - SUBPACKAGES)


def test_design_doc_lists_every_subpackage():
    design = (ROOT / "docs" / "design.md").read_text()
    for package in sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").exists()):
        assert f"{package}/" in design, f"docs/design.md does not show sapkit/{package}/"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_short(name):
    n_lines = len(MODULES[name].read_text().splitlines())
    assert n_lines <= MAX_LINES, f"{name} has {n_lines} lines (split it: one module, one job)"


def test_no_subpackage_imports_another_subpackages_private_names():
    offences = []
    for name, path in MODULES.items():
        here = _subpackage(name)
        for module, names, _ in _imports(path, name):
            there = _subpackage(module)
            if not there or there == here:
                continue
            private = [m for m in module.split(".")[2:] if m.startswith("_") and m != "__init__"]
            private += [n for n in names if n.startswith("_") and n != "__version__"]
            if private:
                offences.append(f"{name} imports {private} from {module}")
    assert not offences, "\n".join(offences)


def test_no_import_cycles_at_module_level():
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, top in _imports(path, name):
            if not top:
                continue  # a deferred import inside a function is how a cycle is deliberately broken
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]
            graph[name].update(t for t in targets if t in MODULES and t != name)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            # a package __init__ importing its own modules is not a cycle of jobs
            pytest.fail("import cycle: " + " → ".join(cycle))


def test_no_reference_points_outside_the_repository():
    # developer background files that never ship with the repository (names assembled so this test
    # does not itself mention them)
    needles = tuple(n + ext for n in ("SPEC", "DESIGN", "STYLE", "REFERENCE_VALUES") for ext in (".md",)) \
        + ("SPEC " + "§", ".." + "/shared")
    offences = []
    for folder in ("sapkit", "notebooks", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".ipynb", ".md", ".yaml", ".sh"} or path == Path(__file__):
                continue
            text = path.read_text(errors="replace")
            offences += [f"{path.relative_to(ROOT)}: {n}" for n in needles if n in text]
    assert not offences, "\n".join(offences)

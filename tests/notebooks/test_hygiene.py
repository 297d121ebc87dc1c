"""Every committed notebook is clean: no outputs, one parameters cell first, short code, no logic.

Code cells hold at most 15 non-blank lines, import statements not counted (the setup cell holds
all imports by design).

The rules (docs/design.md §6 "Conventions") are checked by ``_problems``; its own
tests below feed it broken notebooks so that a rule that stops firing is noticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb")) + [REPO / "tests" / "fixtures" / "browser_demo.ipynb"]
NOTEBOOKS = [p for p in NOTEBOOKS if p.is_file()]
MAX_CODE_LINES = 15
REQUIRED_PARAMETERS = {"profile", "run_dir", "overrides"}


def _python(source: str) -> str:
    """Cell source without IPython magics/shell lines, which ``ast`` cannot parse."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _assigned_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _problems(nb) -> list[str]:
    problems = []
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if "widgets" in nb.metadata:
        problems.append("saved widget state in notebook metadata (clear outputs before committing)")
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"expected exactly one cell tagged 'parameters', found {len(tagged)}")
    elif not code or tagged[0] != code[0][0]:
        problems.append("the 'parameters' cell must be the first code cell")
    else:
        try:
            names = _assigned_names(ast.parse(_python(nb.cells[tagged[0]].source)))
        except SyntaxError:
            names = set()
        if REQUIRED_PARAMETERS - names:
            problems.append(f"parameters cell does not define {sorted(REQUIRED_PARAMETERS - names)}")
    if not any(c.cell_type == "markdown" and any(line.strip() == "## Setup imports"
                                                 for line in c.source.splitlines()) for c in nb.cells):
        problems.append("no '## Setup imports' markdown section")
    for i, cell in code:
        if cell.get("outputs"):
            problems.append(f"cell {i}: has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i}: has an execution count")
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError as exc:
            problems.append(f"cell {i}: does not parse ({exc.msg})")
            continue
        # Import lines do not count: docs/design.md §6 wants *all* imports in the one setup cell.
        import_lines = {n for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                        for n in range(node.lineno, node.end_lineno + 1)}
        n_lines = sum(1 for no, line in enumerate(cell.source.splitlines(), start=1)
                      if line.strip() and no not in import_lines)
        if n_lines > MAX_CODE_LINES:
            problems.append(f"cell {i}: {n_lines} code lines > {MAX_CODE_LINES}; move logic into sapkit")
        defined = [n.name for n in ast.walk(tree)
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        if defined:
            problems.append(f"cell {i}: defines {defined}; definitions belong in sapkit")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean(path):
    problems = _problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.relative_to(REPO)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_cell_has_a_unique_id(path):
    """nbformat 4.5 cell ids: without them papermill prints a MissingIDFieldWarning into `make demo`'s log."""
    import json

    raw = json.loads(path.read_text(encoding="utf-8"))
    ids = [c.get("id") for c in raw["cells"]]
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5), f"{path.name}: nbformat {raw['nbformat']}.{raw['nbformat_minor']}"
    assert None not in ids, f"{path.name}: cells {[i for i, v in enumerate(ids) if v is None]} have no id"
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"


# ----------------------------------------------------------------------------- the checker itself
def _good_notebook():
    v4 = nbformat.v4
    nb = v4.new_notebook()
    params = v4.new_code_cell('profile = "smoke"\nrun_dir = "runs/smoke"\noverrides = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [v4.new_markdown_cell("# Title"), params, v4.new_markdown_cell("## Setup imports"),
                v4.new_code_cell("%matplotlib inline\nimport sapkit\nprint(sapkit.__version__)")]
    return nb


def test_checker_accepts_a_clean_notebook():
    assert _problems(_good_notebook()) == []


def test_import_lines_do_not_count_towards_the_cell_limit():
    nb = _good_notebook()
    nb.cells[3].source = "\n".join([f"import mod{i}" for i in range(20)]
                                   + ["from sapkit import (\n    viz,\n    widgets,\n)", "print(1)"])
    assert _problems(nb) == []


@pytest.mark.parametrize(("breakage", "message"), [
    (lambda nb: nb.cells[3].outputs.append(nbformat.v4.new_output("stream", text="x")), "has outputs"),
    (lambda nb: setattr(nb.cells[3], "execution_count", 4), "execution count"),
    (lambda nb: nb.cells[1].metadata.update(tags=[]), "found 0"),
    (lambda nb: nb.cells[3].metadata.update(tags=["parameters"]), "found 2"),
    (lambda nb: nb.cells.insert(0, nbformat.v4.new_code_cell("x = 1")), "first code cell"),
    (lambda nb: setattr(nb.cells[1], "source", 'profile = "smoke"'), "['overrides', 'run_dir']"),
    (lambda nb: setattr(nb.cells[2], "source", "## Imports"), "Setup imports"),
    (lambda nb: setattr(nb.cells[3], "source", "\n".join(f"x{i} = {i}" for i in range(16))), "16 code lines"),
    (lambda nb: setattr(nb.cells[3], "source", "def f():\n    return 1"), "defines ['f']"),
    (lambda nb: setattr(nb.cells[3], "source", "class A:\n    pass"), "defines ['A']"),
    (lambda nb: nb.metadata.update(widgets={"state": {}}), "saved widget state"),
])
def test_checker_catches(breakage, message):
    nb = _good_notebook()
    breakage(nb)
    assert any(message in p for p in _problems(nb)), _problems(nb)

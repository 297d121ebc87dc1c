"""Progress bars have one home: every bar comes from sapkit.jobs.progress.progress_bar, text bars when headless."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest

from sapkit.jobs import progress
from sapkit.jobs.progress import progress_bar, use_text_progress

PKG = Path(__file__).resolve().parents[2] / "sapkit"


@pytest.fixture
def restore_bar_mode():
    before = progress._TEXT_BARS
    yield
    progress._TEXT_BARS = before


def test_text_bars_only_when_headless(restore_bar_mode):
    from tqdm.auto import tqdm as widget_or_terminal_bar

    assert use_text_progress(headless=False) is False
    assert type(progress_bar(range(3), file=io.StringIO())) is widget_or_terminal_bar
    assert use_text_progress(headless=True) is True
    bar = progress_bar(range(3), desc="scans", file=io.StringIO())
    assert type(bar).__module__ == "sapkit.jobs.progress"
    assert bar.mininterval == 10.0 and bar.ascii is True and list(bar) == [0, 1, 2]
    manual = progress_bar(total=2, desc="jobs", unit="job", file=io.StringIO())
    manual.update()
    assert manual.n == 1 and manual.total == 2


def test_a_disabled_bar_passes_the_items_through(restore_bar_mode):
    use_text_progress(headless=True)
    assert list(progress_bar(iter("ab"), disable=True)) == ["a", "b"]


def test_tqdm_is_imported_only_in_the_progress_home():
    """No other module builds or patches a tqdm bar (it would bypass the headless text mode)."""
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if path == PKG / "jobs" / "progress.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(PKG.parent)}:{node.lineno}" for n in names if n.split(".")[0] == "tqdm"]
    assert not offenders, f"tqdm imported outside sapkit/jobs/progress.py: {offenders}"


def test_the_notebooks_name_for_text_bars_is_the_same_function():
    from sapkit.pipeline.progress import use_text_progress as notebooks_name

    assert notebooks_name is use_text_progress


def test_text_bars_in_a_kernel_write_one_stdout_line_when_done(restore_bar_mode, monkeypatch, capsys):
    """Under papermill stderr becomes a pink error box and every intermediate state stays in the stored
    text: a kernel's text bar prints only its final line, on stdout (issue 25)."""
    monkeypatch.setattr(progress, "_kernel_parent", lambda: {"metadata": {}})  # a kernel, no browser
    use_text_progress()
    bar = progress_bar(range(18), desc="evaluate sap", unit="scan")
    for i in bar:
        bar.set_postfix(loss=0.5)  # the training loop's refresh
        if i == 9:
            assert capsys.readouterr() == ("", "")  # nothing while it runs
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1 and "evaluate sap: 100%" in out and "18/18" in out
    for _ in progress_bar(range(4), desc="windows", leave=False):
        pass
    assert capsys.readouterr() == ("", "")  # a transient bar leaves nothing
    manual = progress_bar(total=18, desc="epochs")
    manual.update(17)
    manual.close()
    assert "17/18" in capsys.readouterr().out  # a bar that stopped early says where


def test_text_bars_outside_a_kernel_still_refresh_on_stderr(restore_bar_mode, monkeypatch, capsys):
    monkeypatch.setattr(progress, "_kernel_parent", lambda: None)
    use_text_progress(headless=True)
    list(progress_bar(range(3), desc="scans"))
    out, err = capsys.readouterr()
    assert out == "" and "3/3" in err

"""What a reader sees in the executed notebooks of a smoke reproduce (issue 25).

- No progress shows as failure: no stderr stream output from progress (a pink error box in
  JupyterLab), no empty stderr box, and no bar below 100 % (``x/y [`` with x < y).
- The notebooks opened with their default parameters (``profile = run_dir = "auto"``) find this run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sapkit.io.run_finder import resolve_run
from sapkit.io.run_paths import RunDir

_BAR = re.compile(r"(\d+)/(\d+) \[")  # tqdm's "n/total [elapsed<remaining ...]"
_PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[|it/s|s/it|\[\d\d:\d\d")
_CARRIAGE_RETURN = re.compile(r"[^\n]*\r(?=[^\n])")  # what a frontend overwrites


def _shown(text: str) -> str:
    """Stream text as a frontend shows it: whatever a carriage return overwrites is gone."""
    return _CARRIAGE_RETURN.sub("", text)


def progress_problems(notebook: dict, name: str) -> list[str]:
    """Every stderr output that is progress or empty, and every bar below 100 %, in one executed notebook."""
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        streams: dict[str, str] = {}  # a frontend shows a cell's stream outputs of one name as one text
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output["text"]
                streams[output["name"]] = streams.get(output["name"], "") + ("".join(text) if isinstance(text, list) else text)
        for stream, text in streams.items():
            shown = _shown(text)
            if stream == "stderr" and (not shown.strip() or _PROGRESS.search(shown)):
                problems.append(f"{name} cell {index}: stderr {shown.strip()[:120]!r}")
            for done, total in _BAR.findall(shown):
                if int(done) < int(total):
                    problems.append(f"{name} cell {index}: a bar at {done}/{total}")
    return problems


def test_the_checker_sees_stderr_progress_and_unfinished_bars():
    def nb(name, text):
        return {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "name": name, "text": text}]}]}

    assert progress_problems(nb("stdout", "evaluate: 100%|####| 18/18 [00:02<00:00]\n"), "x") == []
    assert progress_problems(nb("stdout", "\rfit:   0%| | 0/6 [00:00<?]\rfit: 100%|#| 6/6 [00:09<00:00]\n"), "x") == []
    assert progress_problems(nb("stdout", "evaluate:  94%|###| 17/18 [00:02<00:00]\n"), "x") == ["x cell 0: a bar at 17/18"]
    split = nb("stdout", "\rfit:   0%| | 0/6 [00:01<?]")
    split["cells"][0]["outputs"].append({"output_type": "stream", "name": "stdout", "text": "\rfit: 100%|#| 6/6 [00:09]\n"})
    assert progress_problems(split, "x") == []  # two outputs, shown as one text: the bar ends at 6/6
    assert "stderr" in progress_problems(nb("stderr", "fit: 100%|#| 6/6 [00:09<00:00, 1.5s/it]\n"), "x")[0]
    assert "stderr" in progress_problems(nb("stderr", "\r     \r"), "x")[0]
    assert progress_problems(nb("stderr", "UserWarning: something real\n"), "x") == []


def test_executed_notebooks_hold_no_progress_that_looks_like_failure(smoke_series):
    notebooks = sorted(RunDir(smoke_series).notebooks_dir.glob("*.ipynb"))
    assert len(notebooks) >= 6
    problems = [p for path in notebooks for p in progress_problems(json.loads(path.read_text()), path.stem)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("needs", [None, "data", "splits", "pretrained", "predictions"])
def test_auto_parameters_find_the_smoke_run(smoke_series, needs):
    profile, run_dir = resolve_run("auto", "auto", needs=needs, runs_root=Path(smoke_series).parent)
    assert run_dir == Path(smoke_series) and profile == str(RunDir(smoke_series).config_yaml)

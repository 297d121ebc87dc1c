"""The offline run report on the fake run folder: Table 1, figures, metadata, one self-contained file."""

import html
import json
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from fake_run import write_fake_run
from sapkit.config import load_config
from sapkit.evaluation.cohort import evaluate_run
from sapkit.io.run_paths import RunDir, prepare_run_dir
from sapkit.pipeline.html_report import build_report, save_figure

#: plotly.js is embedded once (~4.5 MB); everything else of the page is small.
MAX_BYTES = 8_000_000


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory) -> RunDir:
    """The fake run after notebook 05's evaluation, with metadata, one figure and two notebook timings."""
    rd = RunDir(write_fake_run(tmp_path_factory.mktemp("report") / "run"))
    config = load_config("smoke")
    prepare_run_dir(rd, config)
    evaluate_run(rd.root, config, progress=False)
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[0.25, 0.5, 0.75], name="f2-curve"))
    save_figure(fig, rd.root, "10_f2", title="F2 against the threshold")
    rd.notebooks_dir.mkdir()
    rd.notebook_marker("04_lesion_finetuning").write_text(json.dumps({"seconds": 321.5}))
    rd.notebook_marker("05_lesion_analysis").write_text(json.dumps({"seconds": 12.25}))
    return rd


@pytest.fixture(scope="module")
def page(evaluated_run) -> str:
    path = build_report(evaluated_run.root)
    assert path == evaluated_run.report_html
    return path.read_text()


def test_table1_values_are_in_the_report(evaluated_run, page):
    table = pd.read_csv(evaluated_run.eval_table("table1"), keep_default_na=False)
    assert len(table) >= 10 and "sap median [95% CI]" in table.columns
    for value in table.astype(str).to_numpy().ravel():
        if value:
            assert html.escape(value) in page, value
    assert "0.448" in page  # the paper's SAP F2 beside ours


def test_figures_timings_and_metadata(evaluated_run, page):
    assert page.count("F2 against the threshold") == 1 and "f2-curve" in page
    assert re.search(r"<td>04_lesion_finetuning</td>\s*<td>321.50</td>", page)
    assert re.search(r"<td>05_lesion_analysis</td>\s*<td>12.25</td>", page)
    assert html.escape(evaluated_run.config_yaml.read_text()) in page
    assert html.escape(evaluated_run.splits_json.read_text()) in page
    versions = json.loads(evaluated_run.versions_json.read_text())
    assert f'&quot;torch&quot;: &quot;{versions["torch"]}&quot;' in page


def test_one_self_contained_file(evaluated_run, page):
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inline: opens without network
    assert page.count("<script type='text/javascript'>") == 1
    size = evaluated_run.report_html.stat().st_size
    assert 1_000_000 < size < MAX_BYTES, size
    # the report adds one file to the run folder and nothing else
    assert sorted(p.name for p in evaluated_run.root.iterdir() if p.is_file()) == \
        ["config.yaml", "report.html", "splits.json", "versions.json"]


def test_report_of_an_unevaluated_run_says_what_is_missing(tmp_path):
    rd = RunDir(tmp_path / "fresh")
    rd.root.mkdir()
    text = build_report(rd.root).read_text()
    assert "eval/table1.csv not written yet (notebook 05)" in text
    assert text.count("not written yet") == 4  # Table 1, config.yaml, versions.json, splits.json
    assert "Notebook run times" not in text

"""The offline run report on the fake run folder: Table 1, figures, metadata, one self-contained file."""

import html
import json
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from fake_run import write_fake_eval, write_fake_run
from sapkit.config import load_config
from sapkit.evaluation.cohort import evaluate_run
from sapkit.io.run_paths import RunDir
from sapkit.io.run_record import prepare_run_dir
from plotly.offline import get_plotlyjs

from sapkit.evaluation.story import METRIC_LABELS, comparisons_table, paired_differences, run_headline
from sapkit.pipeline.html_report import build_report, decode_script, save_figure

#: plotly.js is embedded once, gzipped (~1.8 MB encoded); the demo run's report must stay under 2 MB.
MAX_BYTES = 2_000_000


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory) -> RunDir:
    """The fake run after notebook 05's evaluation, with metadata, one figure and two notebook timings."""
    rd = RunDir(write_fake_run(tmp_path_factory.mktemp("report") / "run"))
    config = load_config("smoke")
    prepare_run_dir(rd, config)
    evaluate_run(rd.path, config, progress=False)
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[0.25, 0.5, 0.75], name="f2-curve"))
    save_figure(fig, rd.path, "10_f2", title="F2 against the threshold")
    rd.notebooks_dir.mkdir()
    rd.notebook_marker("04_lesion_finetuning").write_text(json.dumps({"seconds": 321.5}))
    rd.notebook_marker("05_lesion_analysis").write_text(json.dumps({"seconds": 12.25}))
    return rd


def _bundle_text(page: str) -> str:
    blobs = re.findall(r"<script type='text/plain' id='plotly-gz' data-bytes='(\d+)'>([^<]*)</script>", page)
    assert len(blobs) == 1
    return decode_script(blobs[0][1], int(blobs[0][0]))


@pytest.fixture(scope="module")
def page(evaluated_run) -> str:
    path = build_report(evaluated_run.path)
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
    assert page.count("F2 against the threshold") == 1
    assert '"name": "f2-curve"' in _bundle_text(page)  # the figure travels inside the compressed bundle
    assert re.search(r"<td>04_lesion_finetuning</td>\s*<td>321.50</td>", page)
    assert re.search(r"<td>05_lesion_analysis</td>\s*<td>12.25</td>", page)
    assert html.escape(evaluated_run.config_yaml.read_text()) in page
    assert html.escape(evaluated_run.splits_json.read_text()) in page
    versions = json.loads(evaluated_run.versions_json.read_text())
    assert f'&quot;torch&quot;: &quot;{versions["torch"]}&quot;' in page


def test_one_self_contained_file(evaluated_run, page):
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inline: opens without network
    assert _bundle_text(page).startswith(get_plotlyjs())  # plotly.js once, then the figures
    size = evaluated_run.report_html.stat().st_size
    assert 1_000_000 < size < MAX_BYTES, size
    # the report adds one file to the run folder and nothing else
    assert sorted(p.name for p in evaluated_run.path.iterdir() if p.is_file()) == \
        ["config.yaml", "report.html", "splits.json", "versions.json"]


def test_report_of_an_unevaluated_run_says_what_is_missing(tmp_path):
    rd = RunDir(tmp_path / "fresh")
    rd.path.mkdir()
    text = build_report(rd.path).read_text()
    assert "eval/table1.csv not written yet (notebook 05)" in text
    assert "eval/comparisons.csv not written yet (notebook 05)" in text
    assert text.count("not written yet") == 5  # Table 1, paired tests, config.yaml, versions.json, splits.json
    assert "Notebook run times" not in text and "plotly-gz" not in text  # no figure, no plotly.js


def test_paired_tests_are_in_the_report(evaluated_run, page):
    comparisons = pd.read_csv(evaluated_run.eval_table("comparisons"))
    assert len(comparisons) >= 1
    table = comparisons_table(evaluated_run.path)
    assert len(table) == len(comparisons)
    section = page[page.index("<section id='comparisons'>"):]
    section = section[:section.index("</section>")]
    for row, shown in zip(comparisons.itertuples(), table.itertuples(index=False)):
        assert f"<td>{html.escape(METRIC_LABELS[row.metric])}</td>" in section  # plain words, not column names
        assert row.metric == METRIC_LABELS[row.metric] or f"<td>{row.metric}</td>" not in section
        assert f"<td>{shown.p}</td>" in section and f"<td>{shown[5]}</td>" in section  # p and p (Bonferroni)
    assert "<th>median difference (a − b)</th>" in section and "<td>SAP vs scratch</td>" in section
    diffs = paired_differences(pd.read_csv(evaluated_run.eval_table("patients")), ("f2",))
    assert f"<td>{diffs[('f2', 'sap', 'scratch')]:+.3f}</td>" in section


def test_the_report_opens_with_what_the_run_shows(evaluated_run, page):
    headline = page.index("What this run shows")
    assert headline < page.index("Table 1 (median")
    assert html.escape(run_headline(evaluated_run.path)).replace("**", "") in page
    versions = json.loads(evaluated_run.versions_json.read_text())
    assert versions["commit"] and f"commit <code>{html.escape(versions['commit'])}</code>" in page
    assert re.search(r"run finished \d{4}-\d\d-\d\d \d\d:\d\d", page)
    assert "<div class='wide'><table" in page and ".wide td{white-space:nowrap}" in page  # Table 1 on one line per row


def test_the_headline_follows_the_winner(tmp_path):
    texts = {}
    for leader in ("sap", "ssl"):
        run = write_fake_eval(tmp_path / leader, leader=leader)
        texts[leader] = build_report(run).read_text()
    assert "<b>SAP led</b>" in texts["sap"] and "<b>SSL led</b>" not in texts["sap"]
    assert "<b>SSL led</b>" in texts["ssl"] and "<b>SAP led</b>" not in texts["ssl"]
    assert "SAP led on 4 of 4 key metrics" in texts["sap"] and "SSL led on 4 of 4 key metrics" in texts["ssl"]


def test_figures_carry_no_second_title(tmp_path):
    rd = RunDir(tmp_path / "run")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]), layout={"title": {"text": "FROC, lesions ≥ 1 mL"}})
    save_figure(fig, tmp_path / "run", "05_3_froc_large", title="FROC, lesions ≥ 1 mL")
    page = build_report(tmp_path / "run").read_text()
    assert page.count("FROC, lesions ≥ 1 mL") == 1  # the section heading
    figures = json.loads(_bundle_text(page).split("window.SAPKIT_FIGURES = ", 1)[1].rstrip().rstrip(";"))
    assert "title" not in figures[0]["layout"] and rd.figure_json("05_3_froc_large").is_file()

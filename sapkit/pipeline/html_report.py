"""``run_dir/report.html``: Table 1, the key figures and the run metadata in one offline page.

Notebooks register figures with :func:`save_figure` (plotly JSON in ``run_dir/figures``);
:func:`build_report` gathers them with ``eval/table1.csv``, ``config.yaml``,
``versions.json`` and the notebook timings into a single self-contained HTML file
(plotly.js embedded once, so it opens without network).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from sapkit.io.atomic import atomic_write_text
from sapkit.io.run_paths import RunDir

__all__ = ["save_figure", "build_report"]


def save_figure(fig: Any, run_dir: str | Path, name: str, *, title: str | None = None) -> Path:
    """Store a plotly figure as ``run_dir/figures/<name>.json`` for the report; return the path."""
    payload = {"title": title or name, "figure": json.loads(fig.to_json())}
    return atomic_write_text(RunDir(run_dir).figure_json(name), json.dumps(payload))


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{body}\n</section>"


def _pre(path: Path) -> str:
    return f"<pre>{html.escape(path.read_text())}</pre>" if path.is_file() else "<p><em>not written yet</em></p>"


def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from whatever the run has produced so far."""
    import pandas as pd
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    rd = RunDir(run_dir)
    parts = [f"<h1>sapkit run report — {html.escape(rd.root.name)}</h1>"]
    table = rd.eval_table("table1")
    if table.is_file():
        parts.append(_section("Table 1 (median [95 % CI], IQR) beside the paper", pd.read_csv(table).to_html(index=False, na_rep="")))
    else:
        parts.append(_section("Table 1", "<p><em>eval/table1.csv not written yet (notebook 05)</em></p>"))
    figures = sorted(rd.figures_dir.glob("*.json")) if rd.figures_dir.is_dir() else []
    for i, path in enumerate(figures):
        payload = json.loads(path.read_text())
        fig = pio.from_json(json.dumps(payload["figure"]))
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig{i}", auto_play=False)
        parts.append(_section(payload.get("title", path.stem), div))
    timings = []
    for name, marker in rd.notebook_markers().items():
        info = json.loads(marker.read_text())
        timings.append({"notebook": name, "seconds": info.get("seconds")})
    if timings:
        parts.append(_section("Notebook run times", pd.DataFrame(timings).to_html(index=False)))
    parts.append(_section("Resolved configuration (config.yaml)", _pre(rd.config_yaml)))
    parts.append(_section("Library versions (versions.json)", _pre(rd.versions_json)))
    parts.append(_section("Splits (splits.json)", _pre(rd.splits_json)))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sapkit report</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}pre{background:#f6f6f6;padding:8px;max-height:300px;overflow:auto}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts) + "</body></html>"
    )
    return atomic_write_text(rd.report_html, page)

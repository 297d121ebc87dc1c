"""``run_dir/report.html``: the headline results and the run metadata in one small offline page.

Notebooks register figures with :func:`save_figure` (plotly JSON in ``run_dir/figures``);
:func:`build_report` gathers them with Table 1 (``eval/table1.csv``), the paired tests
(``eval/comparisons.csv``), ``config.yaml``, ``versions.json``, ``splits.json`` and the notebook
timings into one HTML file that opens without network. plotly.js is embedded once, gzipped
together with the figures and Base85-encoded (about 1.8 MB instead of 4.8 MB); the browser inflates
it with its built-in ``DecompressionStream`` (Chromium 80+, Firefox 113+, Safari 16.4+) and draws.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from pathlib import Path
from typing import Any

from sapkit.io.atomic import atomic_write_text
from sapkit.io.run_paths import RunDir

__all__ = ["save_figure", "build_report", "encode_script", "decode_script"]

# RFC 1924 Base85 without "<" (replaced by "."): the text cannot close or comment out its <script>.
_B85 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
_SAFE = _B85.replace("<", ".")
_TO_SAFE = str.maketrans("<", ".")
_FROM_SAFE = str.maketrans(".", "<")

_LOADER = """
<script>
(async function () {
  const A = "%(alphabet)s", s = document.getElementById("plotly-gz").textContent.trim();
  const n = parseInt(document.getElementById("plotly-gz").dataset.bytes, 10), out = new Uint8Array(s.length / 5 * 4);
  const v = new Uint8Array(128); for (let i = 0; i < A.length; i++) v[A.charCodeAt(i)] = i;
  for (let i = 0, o = 0; i < s.length; i += 5, o += 4) {
    let x = 0; for (let j = 0; j < 5; j++) x = x * 85 + v[s.charCodeAt(i + j)];
    out[o] = x >>> 24; out[o + 1] = (x >>> 16) & 255; out[o + 2] = (x >>> 8) & 255; out[o + 3] = x & 255;
  }
  const stream = new Blob([out.subarray(0, n)]).stream().pipeThrough(new DecompressionStream("gzip"));
  const js = await new Response(stream).text();
  const tag = document.createElement("script"); tag.text = js; document.head.appendChild(tag);
  window.SAPKIT_FIGURES.forEach(function (fig, i) {
    Plotly.newPlot(document.getElementById("fig" + i), fig.data, fig.layout || {}, {responsive: true, displaylogo: false});
  });
  document.body.dataset.figuresDrawn = "yes";
})();
</script>
"""


def encode_script(text: str) -> tuple[str, int]:
    """Gzip ``text`` (UTF-8) and encode it in the report's Base85 alphabet; return (encoded, gzip bytes).

    Examples
    --------
    >>> encoded, n = encode_script("Plotly = 1;")
    >>> "<" in encoded, decode_script(encoded, n)
    (False, 'Plotly = 1;')
    """
    raw = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
    padded = raw + b"\0" * (-len(raw) % 4)
    return base64.b85encode(padded).decode("ascii").translate(_TO_SAFE), len(raw)


def decode_script(encoded: str, n_bytes: int) -> str:
    """Inverse of :func:`encode_script` (what the page's loader does in the browser)."""
    raw = base64.b85decode(encoded.translate(_FROM_SAFE))[:n_bytes]
    return gzip.decompress(raw).decode("utf-8")


def save_figure(fig: Any, run_dir: str | Path, name: str, *, title: str | None = None) -> Path:
    """Store a plotly figure as ``run_dir/figures/<name>.json`` for the report; return the path.

    Figures appear in the report in the order of their names (``05_1_threshold`` before ``05_2_froc_all``).
    """
    payload = {"title": title or name, "figure": json.loads(fig.to_json())}
    return atomic_write_text(RunDir(run_dir).figure_json(name), json.dumps(payload))


def _section(title: str, body: str, anchor: str = "") -> str:
    ident = f" id='{anchor}'" if anchor else ""
    return f"<section{ident}><h2>{html.escape(title)}</h2>\n{body}\n</section>"


def _pre(path: Path) -> str:
    return f"<pre>{html.escape(path.read_text())}</pre>" if path.is_file() else "<p><em>not written yet</em></p>"


def _table(path: Path, missing: str, **to_html: Any) -> str:
    import pandas as pd

    if not path.is_file():
        return f"<p><em>{html.escape(missing)}</em></p>"
    return pd.read_csv(path).to_html(index=False, na_rep="", **to_html)


def _markdown_html(text: str) -> str:
    """The story's small markdown (paragraphs, ``- `` bullets, ``**bold**``, ```code```) as HTML."""
    import re

    out, items = [], []
    for line in text.splitlines() + [""]:
        bullet = line.startswith("- ")
        body = html.escape((line[2:] if bullet else line).strip())
        body = re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", body))
        if bullet:
            items.append(f"<li>{body}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if body:
            out.append(f"<p>{body}</p>")
    return "\n".join(out)


def _run_line(rd: RunDir) -> str:
    """Profile, run date (the last finished notebook, else config.yaml) and the commit of ``versions.json``."""
    import datetime

    import yaml

    profile = (yaml.safe_load(rd.config_yaml.read_text()) or {}).get("profile", "?") if rd.config_yaml.is_file() else "?"
    stamps = [p.stat().st_mtime for p in [*rd.notebook_markers().values(), rd.config_yaml] if p.is_file()]
    date = datetime.datetime.fromtimestamp(max(stamps)).strftime("%Y-%m-%d %H:%M") if stamps else "not run yet"
    versions = json.loads(rd.versions_json.read_text()) if rd.versions_json.is_file() else {}
    commit = versions.get("commit") or "not recorded (made before sapkit recorded commits)"
    return (f"<p class='meta'>profile <b>{html.escape(str(profile))}</b> · run finished {html.escape(date)} · "
            f"sapkit {html.escape(str(versions.get('sapkit', '?')))}, commit <code>{html.escape(commit)}</code></p>")


def _bundle(figures: list[dict]) -> str:
    """plotly.js followed by the figures (``window.SAPKIT_FIGURES``): one gzip stream, so the
    plotly template each figure repeats costs almost nothing."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs() + "\n;window.SAPKIT_FIGURES = " + json.dumps(figures) + ";\n"


def build_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from whatever the run has produced so far.

    Sections: what the run shows (who led, by how much, p, against the paper:
    :func:`sapkit.evaluation.story.outcome_markdown`) under the profile, run date and commit, Table 1
    beside the paper, the paired tests in plain words with their median differences, every registered figure (threshold
    curves, FROC, box plots, detection vs volume, learning curves …), notebook run times, the
    resolved configuration, library versions and splits.
    """
    import pandas as pd

    from sapkit.evaluation.story import comparisons_table, outcome_markdown

    rd = RunDir(run_dir)
    folder = rd.config_yaml.parent
    parts = [f"<h1>sapkit run report — {html.escape(folder.name)}</h1>", _run_line(rd)]
    parts.append(_section("What this run shows", _markdown_html(outcome_markdown(folder)), "headline"))
    parts.append(_section("Table 1 (median [95 % CI], IQR) beside the paper",
                          "<div class='wide'>" + _table(rd.eval_table("table1"), "eval/table1.csv not written yet (notebook 05)")
                          + "</div>", "table1"))
    comparisons = comparisons_table(folder)
    parts.append(_section("Paired tests between initialisations (Bonferroni-corrected p-values)",
                          "<p><em>eval/comparisons.csv not written yet (notebook 05)</em></p>" if comparisons is None else
                          "<div class='wide'>" + comparisons.to_html(index=False, na_rep="") + "</div>", "comparisons"))
    figures = []
    for i, path in enumerate(sorted(rd.figures_dir.glob("*.json")) if rd.figures_dir.is_dir() else []):
        payload = json.loads(path.read_text())
        figure = payload["figure"]
        figure.setdefault("layout", {}).pop("title", None)  # the section heading names it; no second title
        figures.append(figure)
        parts.append(_section(payload.get("title", path.stem), f"<div id='fig{i}' class='figure'></div>",
                              f"figure-{path.stem}"))
    timings = [{"notebook": name, "seconds": json.loads(marker.read_text()).get("seconds")}
               for name, marker in rd.notebook_markers().items()]
    if timings:
        parts.append(_section("Notebook run times", pd.DataFrame(timings).to_html(index=False)))
    parts.append(_section("Resolved configuration (config.yaml)", _pre(rd.config_yaml)))
    parts.append(_section("Library versions (versions.json)", _pre(rd.versions_json)))
    parts.append(_section("Splits (splits.json)", _pre(rd.splits_json)))
    return atomic_write_text(rd.report_html, render_page("sapkit report", parts, figures))


def render_page(title: str, parts: list[str], figures: list[dict]) -> str:
    """One offline HTML page: the sections ``parts`` (HTML; a figure's place is ``<div id='fig{i}'>``)
    and the plotly ``figures`` (JSON dicts, in the order of those ids), plotly.js embedded once, gzipped."""
    encoded, n_bytes = encode_script(_bundle(figures)) if figures else ("", 0)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}pre{background:#f6f6f6;padding:8px;max-height:300px;overflow:auto}"
        ".figure{min-height:450px}.wide{overflow-x:auto}.wide table{font-size:0.85em}.wide td{white-space:nowrap}"
        ".meta{color:#555}</style></head><body>"
        + "\n".join(parts)
        + (f"<script type='text/plain' id='plotly-gz' data-bytes='{n_bytes}'>{encoded}</script>"
           + _LOADER % {"alphabet": _SAFE} if figures else "")
        + "</body></html>"
    )

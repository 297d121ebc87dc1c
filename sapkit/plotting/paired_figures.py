"""Per-patient paired figures: SAP against each other initialisation, one line per test patient.

A box plot hides who moved: the paired tests (Wilcoxon signed-rank, ``eval/comparisons.csv``) compare
the same patients under two inits. The slopegraph shows exactly those pairs — one panel per other init,
each patient a line from its value under that init to its value under SAP, drawn in SAP's colour when
SAP is higher, in the other init's colour when lower, light grey when tied — with the median paired
difference (:func:`sapkit.evaluation.story.paired_differences`) and the corrected p-value in the panel
title. :func:`paired_values` is the table the figure draws.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from sapkit.errors import ConfigError
from sapkit.evaluation.story import paired_differences
from sapkit.plotting.colors import axis_title, init_color, init_label, sorted_inits

__all__ = ["paired_values", "slopegraph_figure", "evaluation_slopegraph_figure"]

_TIE = "#c7c7c7"


def paired_values(patients: pd.DataFrame, metric: str = "f2", *, reference: str = "sap") -> pd.DataFrame:
    """``reference`` against every other init, per patient: the pairs a paired test compares.

    Parameters
    ----------
    patients : DataFrame
        ``eval/patients.csv`` (columns ``init, scan_id`` and ``metric``).
    metric : str
        A patient-level column, e.g. ``"f2"``, ``"sensitivity"``, ``"dice_mean"``.
    reference : str

    Returns
    -------
    DataFrame
        Columns ``other, scan_id, other_value, reference_value, difference`` (reference − other), one row
        per other init and patient scored under both, others in ``INIT_ORDER``, patients by ``scan_id``.

    Examples
    --------
    >>> t = pd.DataFrame({"init": ["sap", "sap", "ssl", "ssl"], "scan_id": ["a", "b", "a", "b"], "f2": [0.5, 0.2, 0.3, 0.4]})
    >>> paired_values(t)[["other", "scan_id", "difference"]].round(2).values.tolist()
    [['ssl', 'a', 0.2], ['ssl', 'b', -0.2]]
    """
    missing = {"init", "scan_id", metric} - set(patients.columns)
    if missing:
        raise ConfigError(f"patients table lacks columns {sorted(missing)}; pass eval/patients.csv.")
    wide = patients.pivot_table(index="scan_id", columns="init", values=metric, aggfunc="first")
    if reference not in wide.columns:
        raise ConfigError(f"init {reference!r} has no {metric} values; inits: {sorted(map(str, wide.columns))}.")
    frames = []
    for other in sorted_inits(c for c in wide.columns if c != reference):
        pair = wide[[other, reference]].dropna().sort_index()
        frames.append(pd.DataFrame({"other": str(other), "scan_id": pair.index.astype(str),
                                    "other_value": pair[other].to_numpy(float),
                                    "reference_value": pair[reference].to_numpy(float)}))
    out = pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=["other", "scan_id", "other_value", "reference_value"])
    out["difference"] = out["reference_value"] - out["other_value"]
    return out


def slopegraph_figure(patients: pd.DataFrame, metric: str = "f2", *, reference: str = "sap",
                      pvalues: Mapping[tuple[str, str], float] | None = None, title: str | None = None):
    """One panel per other init: each patient a line from its value under that init to its value under ``reference``.

    Parameters
    ----------
    patients : DataFrame
        ``eval/patients.csv``.
    metric : str
    reference : str
    pvalues : mapping (reference, other) → p, optional
        E.g. :func:`sapkit.plotting.evaluation_figures.comparison_pvalues`; shown in the panel titles.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        Per panel one line trace per patient (x: the two init names, y: :func:`paired_values`'
        ``other_value`` then ``reference_value``; name = scan_id, ``legendgroup`` the direction), then
        one thick black median line. Panel titles: higher / lower / tied counts, the median paired
        difference, p.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    table = paired_values(patients, metric, reference=reference)
    others = list(dict.fromkeys(table["other"]))
    if not others:
        raise ConfigError(f"no other init to pair with {reference!r}; the slopegraph needs two inits.")
    medians = paired_differences(patients, [metric])
    ref_name = init_label(reference)
    titles = []
    for other in others:
        d = table[table["other"] == other]["difference"]
        p = (pvalues or {}).get((reference, other))
        titles.append(f"{ref_name} vs {init_label(other)}: higher in {int((d > 0).sum())}, lower in {int((d < 0).sum())}, "
                      f"tied {int((d == 0).sum())}<br>median difference {medians[(metric, reference, other)]:+.3f}"
                      + ("" if p is None or not np.isfinite(p) else f", p = {p:.3g}"))
    fig = make_subplots(rows=1, cols=len(others), shared_yaxes=True, subplot_titles=titles, horizontal_spacing=0.08)
    shown: set[str] = set()
    for col, other in enumerate(others, start=1):
        rows = table[table["other"] == other]
        x = [init_label(other), ref_name]
        for r in rows.itertuples():
            direction = f"{ref_name} higher" if r.difference > 0 else \
                (f"{ref_name} lower" if r.difference < 0 else "tied")
            color = init_color(reference) if r.difference > 0 else (init_color(other) if r.difference < 0 else _TIE)
            fig.add_trace(go.Scatter(x=x, y=[r.other_value, r.reference_value], mode="lines+markers", name=r.scan_id,
                                     legendgroup=direction, showlegend=False, opacity=0.75,
                                     line=dict(color=color, width=1.5), marker=dict(size=6, color=color),
                                     hovertemplate=f"{r.scan_id}<br>%{{x}}: %{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
            shown.add(direction)
        fig.add_trace(go.Scatter(x=x, y=[rows["other_value"].median(), rows["reference_value"].median()],
                                 mode="lines+markers", name="median of each init", legendgroup="median",
                                 showlegend=col == 1, line=dict(color="black", width=4), marker=dict(size=10)),
                      row=1, col=col)
    for direction, color, note in ((f"{ref_name} higher", init_color(reference), ""),
                                   (f"{ref_name} lower", "#555555", " (line in the other init's colour)"),
                                   ("tied", _TIE, "")):
        if direction in shown:  # legend entries for the line colours
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"patient: {direction}{note}",
                                     line=dict(color=color, width=2), legendgroup=direction), row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=440, margin=dict(t=110 if title else 90),
                      legend=dict(orientation="h", y=-0.12, itemsizing="constant"))
    fig.update_yaxes(title_text=axis_title(metric), row=1, col=1)
    fig.update_annotations(font_size=12)
    return fig


def evaluation_slopegraph_figure(evaluation: Any, *, metric: str = "f2", reference: str = "sap",
                                 title: str | None = None):
    """:func:`slopegraph_figure` of a :class:`~sapkit.evaluation.cohort.RunEvaluation`, with its
    Bonferroni-corrected p-values (``.comparisons``). A run without ``reference`` and another init
    gets a figure that says so (notebook 05 runs to the end on a single-init sweep)."""
    import plotly.graph_objects as go

    from sapkit.plotting.evaluation_figures import comparison_pvalues

    inits = sorted_inits(pd.unique(evaluation.patients["init"].astype(str))) if len(evaluation.patients) else []
    if reference not in inits or len(inits) < 2:  # e.g. a sweep that fine-tunes SAP alone: say so, do not fail
        fig = go.Figure(layout=dict(title=title, template="plotly_white", height=240,
                                    xaxis=dict(visible=False), yaxis=dict(visible=False)))
        fig.add_annotation(text=f"Nothing to pair: this run fine-tuned {inits or 'no init'}; the slopegraph pairs "
                                f"{init_label(reference)} with another init (lesion.inits).",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font_size=14)
        return fig
    pvalues = comparison_pvalues(evaluation.comparisons, metric) if len(evaluation.comparisons) else {}
    return slopegraph_figure(evaluation.patients, metric, reference=reference, pvalues=pvalues, title=title)

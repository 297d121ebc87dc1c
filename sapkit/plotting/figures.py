"""Plotly figures of tables: learning curves, box plots with significance marks, per-bone Dice, label efficiency.

Every function takes tables (pandas DataFrames, or paths to the run folder's CSV files) and
returns a :class:`plotly.graph_objects.Figure` coloured and titled by :mod:`sapkit.plotting.colors`;
nothing is computed here that a metric module owns (p-values, Dice): they are passed in. The
figures of an evaluated run (FROC, threshold, detection by volume) are in
:mod:`sapkit.plotting.evaluation_figures`, image slices in :mod:`sapkit.plotting.slices`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.errors import ConfigError
from sapkit.plotting.colors import axis_title, init_color, init_label, sorted_inits

__all__ = [
    "p_to_stars",
    "learning_curves",
    "box_figure",
    "per_bone_dice_figure",
    "label_efficiency_figure",
]


def p_to_stars(p_value: float) -> str:
    """Significance mark of a p-value: ``***`` < 0.001 ≤ ``**`` < 0.01 ≤ ``*`` < 0.05 ≤ ``ns``.

    NaN (the test could not be computed, e.g. every paired difference is zero) gives ``n/a``.

    Raises
    ------
    ConfigError
        ``p_value`` is outside [0, 1].

    Examples
    --------
    >>> [p_to_stars(p) for p in (0.0004, 0.001, 0.04, 0.05, float("nan"))]
    ['***', '**', '*', 'ns', 'n/a']
    """
    p = float(p_value)
    if np.isnan(p):
        return "n/a"
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"p-value must be in [0, 1], got {p_value!r}.")
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "ns"


def _read_table(source: str | Path | pd.DataFrame, what: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{what}: no file at {path}; run the training step first or pass a DataFrame.")
    return pd.read_csv(path)


_FOLD_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_INIT_SYMBOLS = {"scratch": "circle", "ssl": "square", "sap": "diamond"}


def learning_curves(logs: Mapping[str, str | Path | pd.DataFrame], *, x: str = "epoch",
                    metrics: Sequence[str] | None = None, title: str | None = "Learning curves"):
    """Learning curves, one row per metric and one trace per run, coloured by initialisation.

    Parameters
    ----------
    logs : mapping name → log.csv path or DataFrame
        Names like ``"sap"`` or ``"sap/fold_0"``; the part before ``/`` picks the colour and the
        marker symbol, the run's place among that init's runs picks the dash (fold 1 solid, fold 2
        dashed …), so the folds of one init stay apart.
    x : str
        Column on the horizontal axis.
    metrics : sequence of str, optional
        Columns to plot; default every numeric column except ``x`` present in any log.
        Missing values (e.g. validation only every k epochs) are skipped, not drawn as gaps; a
        metric logged at no more than half of a log's rows (validation at epochs 0 and 6) is drawn
        as markers only: a line between two points would invent the epochs in between.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        ``len(metrics) × len(logs)`` traces, semi-transparent so one init's line never hides another's;
        each row titled by :func:`~sapkit.plotting.colors.axis_title`.
    """
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    tables = {key: _read_table(src, f"log of {key!r}") for key, src in logs.items()}
    for key, df in tables.items():
        if x not in df.columns:
            raise ConfigError(f"log of {key!r} has no column {x!r}; columns are {list(df.columns)}.")
    if metrics is None:
        metrics = []
        for df in tables.values():
            metrics += [c for c in df.select_dtypes("number").columns if c != x and c not in metrics]
    metrics = list(metrics)
    if not metrics:
        raise ConfigError("no metric columns to plot; pass metrics=[...] naming columns of log.csv.")
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, subplot_titles=[axis_title(m) for m in metrics],
                        vertical_spacing=min(0.08, 0.3 / len(metrics)))
    keys = sorted_inits(tables)
    runs_of: dict[str, list[str]] = {}
    for key in keys:
        runs_of.setdefault(str(key).split("/")[0].lower(), []).append(key)
    for row, metric in enumerate(metrics, start=1):
        for key in keys:
            df = tables[key]
            if metric not in df.columns:
                continue
            part = df[[x, metric]].dropna()
            init = str(key).split("/")[0].lower()
            sparse = len(part) <= max(len(df) / 2, 1)
            fig.add_trace(go.Scatter(x=part[x].to_numpy(), y=part[metric].to_numpy(),
                                     mode="markers" if sparse else "lines+markers", opacity=0.8,
                                     name=init_label(key), legendgroup=str(key), showlegend=row == 1,
                                     line=dict(color=init_color(key), width=2,
                                               dash=_FOLD_DASHES[runs_of[init].index(key) % len(_FOLD_DASHES)]),
                                     marker=dict(size=9 if sparse else 5, symbol=_INIT_SYMBOLS.get(init, "circle"),
                                                 color=init_color(key))),
                          row=row, col=1)
    fig.update_xaxes(title_text=axis_title(x), row=len(metrics), col=1)
    fig.update_layout(title=title, height=220 * len(metrics) + 80, template="plotly_white")
    return fig


def _p_value(p: Any) -> float:
    """A p-value given as a number or as a test result with ``.p_value`` (``sapkit.evaluation.statistics.TestResult``)."""
    return float(getattr(p, "p_value", p))


def box_figure(df: pd.DataFrame, *, value: str, group: str = "init",
               pvalues: Mapping[tuple[str, str], Any] | None = None, title: str | None = None):
    """Box plot of a per-patient metric per group, with significance brackets.

    Parameters
    ----------
    df : DataFrame
        One row per patient and group, columns ``group`` and ``value``.
    value : str
        Metric column, e.g. ``"dice_mean"`` or ``"f2"``; the y axis is titled by
        :func:`~sapkit.plotting.colors.axis_title`.
    group : str
        Grouping column (initialisation).
    pvalues : mapping (group_a, group_b) → p-value or TestResult, optional
        From a paired test (``sapkit.evaluation.statistics``); each becomes a bracket with :func:`p_to_stars`,
        the narrowest pairs lowest.

    Returns
    -------
    plotly.graph_objects.Figure
        One box trace per group; one bracket shape and one annotation per p-value, stacked
        above the data from the narrowest pair (neighbours) to the widest.
    """
    import plotly.graph_objects as go

    missing = {value, group} - set(df.columns)
    if missing:
        raise ConfigError(f"table lacks columns {sorted(missing)}; got {list(df.columns)}.")
    groups = sorted_inits(pd.unique(df[group].astype(str)))
    fig = go.Figure()
    for g in groups:
        vals = df.loc[df[group].astype(str) == g, value].to_numpy(dtype=float)
        fig.add_trace(go.Box(y=vals, x=[init_label(g)] * len(vals), name=init_label(g), boxpoints="all", jitter=0.3,
                             pointpos=0, marker=dict(color=init_color(g), size=5), line=dict(color=init_color(g))))
    finite = df[value].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    top, span = (float(finite.max()), float(np.ptp(finite)) or 1.0) if finite.size else (1.0, 1.0)
    position = {g: i for i, g in enumerate(groups)}
    for (a, b) in pvalues or {}:
        if str(a) not in position or str(b) not in position:
            raise ConfigError(f"p-value pair ({a!r}, {b!r}) names a group not in the table {groups}.")
    # narrow brackets low, wide ones above them: a wide bracket's star then sits between the legs of
    # nothing, and no star lands on the leg of a bracket drawn higher up
    ordered = sorted((pvalues or {}).items(), key=lambda item: (abs(position[str(item[0][0])] - position[str(item[0][1])]),
                                                               min(position[str(item[0][0])], position[str(item[0][1])])))
    for level, ((a, b), p) in enumerate(ordered, start=1):
        xa, xb = sorted((position[str(a)], position[str(b)]))
        y0, y1 = top + span * 0.06 * (2 * level - 1), top + span * 0.06 * 2 * level
        fig.add_shape(type="path", path=f"M {xa},{y0} L {xa},{y1} L {xb},{y1} L {xb},{y0}",
                      line=dict(color="black", width=1), xref="x", yref="y")
        fig.add_annotation(x=(xa + xb) / 2, y=y1, text=p_to_stars(_p_value(p)), showarrow=False, yshift=8,
                           hovertext=f"p = {_p_value(p):.3g}")
    fig.update_layout(title=title, template="plotly_white", showlegend=False, yaxis_title=axis_title(value),
                      xaxis_title=axis_title(group))
    if ordered and finite.size:  # room for the highest star (annotations do not widen plotly's autorange)
        fig.update_yaxes(range=[float(finite.min()) - span * 0.05, top + span * (0.12 * len(ordered) + 0.1)])
    return fig


def per_bone_dice_figure(df: pd.DataFrame, *, bone_col: str = "bone", value: str = "dice", group: str = "init",
                         bone_order: Sequence[str] | None = None, title: str | None = "Dice per bone"):
    """Bars of mean Dice per bone and group, with ±1 standard deviation.

    Parameters
    ----------
    df : DataFrame
        One row per case, bone and group (``group`` may be absent for a single model).
    group : str
        Grouping column: an initialisation (coloured as such) or any other column, e.g. a
        propagation ``stage``.
    bone_order : sequence of str, optional
        Order of bones on the x axis; default the order of first appearance.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per group; ``y`` is the mean over cases (NaN Dice are skipped).
    """
    import plotly.graph_objects as go

    missing = {bone_col, value} - set(df.columns)
    if missing:
        raise ConfigError(f"table lacks columns {sorted(missing)}; got {list(df.columns)}.")
    data = df.copy()
    if group not in data.columns:
        data[group] = "sap"
    bones = list(bone_order) if bone_order is not None else list(pd.unique(data[bone_col].astype(str)))
    fig = go.Figure()
    for g in sorted_inits(pd.unique(data[group].astype(str))):
        part = data[data[group].astype(str) == g]
        stats = part.groupby(part[bone_col].astype(str))[value].agg(["mean", "std"]).reindex(bones)
        fig.add_trace(go.Bar(x=bones, y=stats["mean"].to_numpy(), name=init_label(g), marker_color=init_color(g),
                             error_y=dict(type="data", array=stats["std"].fillna(0).to_numpy())))
    fig.update_layout(title=title, template="plotly_white", barmode="group", yaxis_range=[0, 1.05],
                      yaxis_title=axis_title(value), xaxis_title=axis_title(bone_col), legend_title_text=axis_title(group))
    return fig


def _degenerate_share(summary: pd.DataFrame) -> pd.Series:
    """Share of a run's scans with a flagged prediction (0 where the summary predates the flags)."""
    if "flagged_scans" not in summary.columns:
        return pd.Series(0.0, index=summary.index)
    return summary["flagged_scans"] / summary["n_patients"].clip(lower=1)


def label_efficiency_figure(summary: pd.DataFrame, *, x: str = "lesion.label_fraction",
                            title: str | None = "Label efficiency"):
    """Median patient F2 and per-patient Dice against the labelled fraction, one line per init.

    Parameters
    ----------
    summary : DataFrame
        One row per run and init (``sapkit.pipeline.sweep.aggregate_runs``): columns ``init``,
        ``median_f2``, ``median_dice`` and, when the sweep varied it, ``x``. Rows sharing an
        ``x`` value are averaged (over the other grid axes); without ``x`` the runs are numbered.
        With ``flagged_scans`` and ``n_patients``, a point where most scans hold a flagged
        prediction (docs/metrics.md §15) is drawn as a large ✕.

    Returns
    -------
    plotly.graph_objects.Figure
        Two panels, one line per init in each.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    missing = {"init", "median_f2", "median_dice"} - set(summary.columns)
    if missing:
        raise ConfigError(f"sweep summary lacks columns {sorted(missing)}; build it with aggregate_runs.")
    has_x = x in summary.columns
    fig = make_subplots(rows=1, cols=2, subplot_titles=(axis_title("median_f2"), axis_title("median_dice")))
    for init in sorted_inits(pd.unique(summary["init"].astype(str))):
        part = summary[summary["init"].astype(str) == init]
        part = part.assign(_degenerate=_degenerate_share(part))
        cols = ["median_f2", "median_dice", "_degenerate"]
        means = part.groupby(x)[cols].mean().reset_index() if has_x else part
        xs = means[x] if has_x else list(range(len(means)))
        symbols = ["x-thin-open" if d >= 0.5 else "circle" for d in means["_degenerate"]]
        for col, metric in ((1, "median_f2"), (2, "median_dice")):
            fig.add_trace(go.Scatter(x=xs, y=means[metric], mode="lines+markers", name=init_label(init),
                                     legendgroup=init, showlegend=col == 1, line=dict(color=init_color(init)),
                                     marker=dict(symbol=symbols, size=[12 if s != "circle" else 7 for s in symbols])),
                          row=1, col=col)
    if any(_degenerate_share(summary) >= 0.5):
        fig.add_annotation(text="✕: most scans hold a flagged prediction (docs/metrics.md §15)", showarrow=False,
                           xref="paper", yref="paper", x=0, y=-0.28, xanchor="left", font=dict(size=11))
    fig.update_xaxes(title_text="fraction of labelled training patients" if has_x else "run")
    fig.update_layout(title=title, height=380, template="plotly_white")
    return fig

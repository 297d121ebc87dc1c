"""Plotly figures shared by the notebooks, with one colour per initialisation everywhere.

Every function takes tables (pandas DataFrames, or paths to the run folder's CSV files) and
returns a :class:`plotly.graph_objects.Figure`; nothing is computed here that a metric module
owns (FROC points, p-values, Dice): they are passed in.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.errors import MetricInputError

__all__ = [
    "INIT_ORDER",
    "INIT_COLORS",
    "INIT_LABELS",
    "init_color",
    "p_to_stars",
    "learning_curves",
    "froc_figure",
    "box_figure",
    "detection_by_volume",
    "volume_detection_figure",
    "per_bone_dice_figure",
]

#: Initialisations in the order every figure and table lists them.
INIT_ORDER: tuple[str, ...] = ("scratch", "ssl", "sap")
#: One colour per initialisation, used by every notebook (grey, blue, red: SAP stands out).
INIT_COLORS: Mapping[str, str] = MappingProxyType({"scratch": "#7f7f7f", "ssl": "#1f77b4", "sap": "#d62728"})
#: Display names.
INIT_LABELS: Mapping[str, str] = MappingProxyType({"scratch": "Scratch", "ssl": "SSL", "sap": "SAP"})
_EXTRA_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e")


def _init_of(key: str) -> str:
    """``"sap/fold_0"`` → ``"sap"``."""
    return str(key).split("/")[0].lower()


def init_color(init: str) -> str:
    """Colour of an initialisation (``"sap"``, ``"sap/fold_0"`` …).

    Unknown names get a stable colour from a fixed spare palette (same name, same colour).

    Examples
    --------
    >>> init_color("SAP/fold_3") == INIT_COLORS["sap"]
    True
    """
    name = _init_of(init)
    if name in INIT_COLORS:
        return INIT_COLORS[name]
    return _EXTRA_COLORS[zlib.crc32(name.encode()) % len(_EXTRA_COLORS)]


def _label(key: str) -> str:
    name = _init_of(key)
    rest = str(key)[len(name):]
    return INIT_LABELS.get(name, str(key).split("/")[0]) + rest


def _sorted_keys(keys) -> list[str]:
    order = {name: i for i, name in enumerate(INIT_ORDER)}
    return sorted(keys, key=lambda k: (order.get(_init_of(k), len(order)), str(k)))


def p_to_stars(p_value: float) -> str:
    """Significance mark of a p-value: ``***`` < 0.001 ≤ ``**`` < 0.01 ≤ ``*`` < 0.05 ≤ ``ns``.

    NaN (the test could not be computed, e.g. every paired difference is zero) gives ``n/a``.

    Raises
    ------
    MetricInputError
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
        raise MetricInputError(f"p-value must be in [0, 1], got {p_value!r}.")
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "ns"


def _read_table(source: str | Path | pd.DataFrame, what: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.is_file():
        raise MetricInputError(f"{what}: no file at {path}; run the training step first or pass a DataFrame.")
    return pd.read_csv(path)


def learning_curves(logs: Mapping[str, str | Path | pd.DataFrame], *, x: str = "epoch",
                    metrics: Sequence[str] | None = None, title: str | None = "Learning curves"):
    """Learning curves, one row per metric and one line per run, coloured by initialisation.

    Parameters
    ----------
    logs : mapping name → log.csv path or DataFrame
        Names like ``"sap"`` or ``"sap/fold_0"``; the part before ``/`` picks the colour.
    x : str
        Column on the horizontal axis.
    metrics : sequence of str, optional
        Columns to plot; default every numeric column except ``x`` present in any log.
        Missing values (e.g. validation only every k epochs) are skipped, not drawn as gaps.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        ``len(metrics) × len(logs)`` line traces.
    """
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    tables = {key: _read_table(src, f"log of {key!r}") for key, src in logs.items()}
    for key, df in tables.items():
        if x not in df.columns:
            raise MetricInputError(f"log of {key!r} has no column {x!r}; columns are {list(df.columns)}.")
    if metrics is None:
        metrics = []
        for df in tables.values():
            metrics += [c for c in df.select_dtypes("number").columns if c != x and c not in metrics]
    metrics = list(metrics)
    if not metrics:
        raise MetricInputError("no metric columns to plot; pass metrics=[...] naming columns of log.csv.")
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, subplot_titles=metrics,
                        vertical_spacing=min(0.08, 0.3 / len(metrics)))
    for row, metric in enumerate(metrics, start=1):
        for key in _sorted_keys(tables):
            df = tables[key]
            if metric not in df.columns:
                continue
            part = df[[x, metric]].dropna()
            fig.add_trace(go.Scatter(x=part[x].to_numpy(), y=part[metric].to_numpy(), mode="lines+markers",
                                     name=_label(key), legendgroup=str(key), showlegend=row == 1,
                                     line=dict(color=init_color(key)), marker=dict(size=4)), row=row, col=1)
    fig.update_xaxes(title_text=x, row=len(metrics), col=1)
    fig.update_layout(title=title, height=220 * len(metrics) + 80, template="plotly_white")
    return fig


def froc_figure(curves: Mapping[str, pd.DataFrame], *, x: str = "fp_per_patient", y: str = "sensitivity",
                operating_points: Mapping[str, tuple[float, float]] | None = None,
                title: str | None = "FROC"):
    """Free-response ROC curves: lesion sensitivity vs false positives per patient.

    Parameters
    ----------
    curves : mapping init → DataFrame
        One row per threshold with columns ``x`` and ``y`` (sorted by ``x`` here).
    operating_points : mapping init → (fp_per_patient, sensitivity), optional
        The tuned threshold's point, drawn as a diamond.

    Returns
    -------
    plotly.graph_objects.Figure
        One line per init, then one marker per operating point.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for key in _sorted_keys(curves):
        df = curves[key]
        missing = {x, y} - set(df.columns)
        if missing:
            raise MetricInputError(f"FROC table of {key!r} lacks columns {sorted(missing)}; got {list(df.columns)}.")
        df = df.sort_values(x)
        fig.add_trace(go.Scatter(x=df[x].to_numpy(), y=df[y].to_numpy(), mode="lines", name=_label(key),
                                 legendgroup=str(key), line=dict(color=init_color(key), width=2)))
    for key in _sorted_keys(operating_points or {}):
        fp, sens = operating_points[key]
        fig.add_trace(go.Scatter(x=[fp], y=[sens], mode="markers", name=f"{_label(key)} operating point",
                                 legendgroup=str(key), showlegend=False,
                                 marker=dict(symbol="diamond", size=11, color=init_color(key),
                                             line=dict(color="black", width=1))))
    fig.update_layout(title=title, template="plotly_white", xaxis_title="false positives per patient",
                      yaxis_title="lesion sensitivity", yaxis_range=[0, 1.02])
    return fig


def box_figure(df: pd.DataFrame, *, value: str, group: str = "init",
               pvalues: Mapping[tuple[str, str], float] | None = None, title: str | None = None):
    """Box plot of a per-patient metric per group, with significance brackets.

    Parameters
    ----------
    df : DataFrame
        One row per patient and group, columns ``group`` and ``value``.
    value : str
        Metric column, e.g. ``"dice"`` or ``"f2"``.
    group : str
        Grouping column (initialisation).
    pvalues : mapping (group_a, group_b) → p-value, optional
        From a paired test (``sapkit.evaluation.statistics``); each becomes a bracket with :func:`p_to_stars`.

    Returns
    -------
    plotly.graph_objects.Figure
        One box trace per group; one bracket shape and one annotation per p-value, stacked
        above the data in the order given.
    """
    import plotly.graph_objects as go

    missing = {value, group} - set(df.columns)
    if missing:
        raise MetricInputError(f"table lacks columns {sorted(missing)}; got {list(df.columns)}.")
    groups = _sorted_keys(pd.unique(df[group].astype(str)))
    fig = go.Figure()
    for g in groups:
        vals = df.loc[df[group].astype(str) == g, value].to_numpy(dtype=float)
        fig.add_trace(go.Box(y=vals, x=[_label(g)] * len(vals), name=_label(g), boxpoints="all", jitter=0.3,
                             pointpos=0, marker=dict(color=init_color(g), size=5), line=dict(color=init_color(g))))
    finite = df[value].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    top, span = (float(finite.max()), float(np.ptp(finite)) or 1.0) if finite.size else (1.0, 1.0)
    position = {g: i for i, g in enumerate(groups)}
    for level, ((a, b), p) in enumerate((pvalues or {}).items(), start=1):
        if str(a) not in position or str(b) not in position:
            raise MetricInputError(f"p-value pair ({a!r}, {b!r}) names a group not in the table {groups}.")
        xa, xb = sorted((position[str(a)], position[str(b)]))
        y0, y1 = top + span * 0.06 * (2 * level - 1), top + span * 0.06 * 2 * level
        fig.add_shape(type="path", path=f"M {xa},{y0} L {xa},{y1} L {xb},{y1} L {xb},{y0}",
                      line=dict(color="black", width=1), xref="x", yref="y")
        fig.add_annotation(x=(xa + xb) / 2, y=y1, text=p_to_stars(p), showarrow=False, yshift=8,
                           hovertext=f"p = {p:.3g}")
    fig.update_layout(title=title, template="plotly_white", showlegend=False, yaxis_title=value)
    return fig


def detection_by_volume(lesions: pd.DataFrame, *, volume_col: str = "volume_ml", detected_col: str = "detected",
                        group: str = "init",
                        bin_edges_ml: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0, np.inf)) -> pd.DataFrame:
    """Detection rate of reference lesions per volume bin and group.

    Parameters
    ----------
    lesions : DataFrame
        One row per reference lesion and group: ``volume_col`` (mL), ``detected_col`` (bool).
    bin_edges_ml : sequence of float
        Increasing bin edges in mL; bins are ``[lo, hi)``.

    Returns
    -------
    DataFrame
        Columns ``group``, ``bin``, ``lo_ml``, ``hi_ml``, ``n_lesions``, ``n_detected``,
        ``detection_rate`` (NaN for an empty bin); every (group, bin) pair is present.

    Examples
    --------
    >>> t = pd.DataFrame({"init": ["sap"] * 3, "volume_ml": [0.1, 0.2, 3.0], "detected": [True, False, True]})
    >>> detection_by_volume(t, bin_edges_ml=(0, 1, 10))["detection_rate"].tolist()
    [0.5, 1.0]
    """
    missing = {volume_col, detected_col, group} - set(lesions.columns)
    if missing:
        raise MetricInputError(f"lesion table lacks columns {sorted(missing)}; got {list(lesions.columns)}.")
    edges = np.asarray(bin_edges_ml, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise MetricInputError(f"bin_edges_ml must be ≥ 2 increasing values, got {bin_edges_ml!r}.")
    labels = [f"{lo:g}–{hi:g} mL" if np.isfinite(hi) else f"≥ {lo:g} mL" for lo, hi in zip(edges[:-1], edges[1:])]
    rows = []
    volume = lesions[volume_col].to_numpy(dtype=float)
    bins = np.digitize(volume, edges[1:-1], right=False)
    for g in _sorted_keys(pd.unique(lesions[group].astype(str))):
        in_group = lesions[group].astype(str).to_numpy() == g
        for b, name in enumerate(labels):
            sel = in_group & (bins == b) & (volume >= edges[0]) & (volume < edges[-1])
            n = int(sel.sum())
            k = int(lesions[detected_col].to_numpy()[sel].astype(bool).sum())
            rows.append({"group": g, "bin": name, "lo_ml": edges[b], "hi_ml": edges[b + 1], "n_lesions": n,
                         "n_detected": k, "detection_rate": k / n if n else float("nan")})
    return pd.DataFrame(rows, columns=["group", "bin", "lo_ml", "hi_ml", "n_lesions", "n_detected",
                                       "detection_rate"])


def volume_detection_figure(lesions: pd.DataFrame, *, volume_col: str = "volume_ml",
                            detected_col: str = "detected", group: str = "init",
                            bin_edges_ml: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0, np.inf),
                            title: str | None = "Detection rate vs lesion volume"):
    """Grouped bars of :func:`detection_by_volume`, labelled ``detected/total`` per bar.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per group.
    """
    import plotly.graph_objects as go

    table = detection_by_volume(lesions, volume_col=volume_col, detected_col=detected_col, group=group,
                                bin_edges_ml=bin_edges_ml)
    fig = go.Figure()
    for g, part in table.groupby("group", sort=False):
        fig.add_trace(go.Bar(x=part["bin"], y=part["detection_rate"], name=_label(g), marker_color=init_color(g),
                             text=[f"{k}/{n}" for k, n in zip(part["n_detected"], part["n_lesions"])],
                             textposition="outside"))
    fig.update_layout(title=title, template="plotly_white", barmode="group", yaxis_range=[0, 1.12],
                      xaxis_title="reference lesion volume", yaxis_title="detection rate")
    return fig


def per_bone_dice_figure(df: pd.DataFrame, *, bone_col: str = "bone", value: str = "dice", group: str = "init",
                         bone_order: Sequence[str] | None = None, title: str | None = "Dice per bone"):
    """Bars of mean Dice per bone and group, with ±1 standard deviation.

    Parameters
    ----------
    df : DataFrame
        One row per case, bone and group (``group`` may be absent for a single model).
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
        raise MetricInputError(f"table lacks columns {sorted(missing)}; got {list(df.columns)}.")
    data = df.copy()
    if group not in data.columns:
        data[group] = "sap"
    bones = list(bone_order) if bone_order is not None else list(pd.unique(data[bone_col].astype(str)))
    fig = go.Figure()
    for g in _sorted_keys(pd.unique(data[group].astype(str))):
        part = data[data[group].astype(str) == g]
        stats = part.groupby(part[bone_col].astype(str))[value].agg(["mean", "std"]).reindex(bones)
        fig.add_trace(go.Bar(x=bones, y=stats["mean"].to_numpy(), name=_label(g), marker_color=init_color(g),
                             error_y=dict(type="data", array=stats["std"].fillna(0).to_numpy())))
    fig.update_layout(title=title, template="plotly_white", barmode="group", yaxis_range=[0, 1.05],
                      yaxis_title=value, xaxis_title=bone_col)
    return fig

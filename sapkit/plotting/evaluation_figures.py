"""Figures of an evaluated run: FROC curves, threshold tuning, box plots with p-values, detection by volume.

The ``evaluation_*`` functions take a :class:`sapkit.evaluation.cohort.RunEvaluation` (what
``evaluate_run`` returns) and assemble a figure from its result objects (``FrocCurve``,
``ThresholdChoice``, the comparisons table of ``sapkit.evaluation.tables.compare_inits``); the
other functions take those objects or plain tables. Nothing here computes a metric.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.errors import ConfigError
from sapkit.plotting.colors import axis_title, init_color, init_label, sorted_inits
from sapkit.plotting.figures import box_figure

__all__ = [
    "froc_figure",
    "operating_points",
    "evaluation_froc_figure",
    "threshold_curve_figure",
    "comparison_pvalues",
    "evaluation_box_figure",
    "detection_by_volume",
    "volume_detection_figure",
]

_SUBSET_TITLES = {"all": "FROC, all lesions", "large": "FROC, lesions ≥ 1 mL"}


def froc_figure(curves: Mapping[str, Any], *, x: str = "fp_per_exam", y: str = "sensitivity",
                operating_points: Mapping[str, tuple[float, float]] | None = None, title: str | None = "FROC"):
    """Free-response ROC curves: pooled lesion sensitivity against false positives per exam.

    Parameters
    ----------
    curves : mapping init → FrocCurve or DataFrame
        A :class:`sapkit.metrics.FrocCurve` (its legend entry then carries the unnormalised
        AUC) or a table with columns ``x`` and ``y``, one row per threshold, such as
        ``FrocCurve.to_frame()``; rows are sorted by ``x`` here.
    x, y : str
        Columns of a table on the horizontal and vertical axis.
    operating_points : mapping init → (fp_per_exam, sensitivity), optional
        The tuned threshold's point (:func:`operating_points`), drawn as a diamond.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        One line per init (in ``INIT_ORDER``), then one marker per operating point; x axis
        "false positives per exam", y axis "lesion sensitivity".
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    limits: list[float] = []
    for key in sorted_inits(curves):
        curve = curves[key]
        name = init_label(key)
        if hasattr(curve, "to_frame"):
            name += f" (AUC≤{curve.max_fp:g} = {curve.auc:.2f})"
            limits.append(float(curve.max_fp))
            df = curve.to_frame()
        else:
            df = curve
        missing = {x, y} - set(df.columns)
        if missing:
            raise ConfigError(f"FROC table of {key!r} lacks columns {sorted(missing)}; got {list(df.columns)}.")
        df = df.sort_values(x)
        fig.add_trace(go.Scatter(x=df[x].to_numpy(), y=df[y].to_numpy(), mode="lines", name=name,
                                 legendgroup=str(key), line=dict(color=init_color(key), width=2)))
    points = []
    for key in sorted_inits(operating_points or {}):
        fp, sens = operating_points[key]
        points.append(float(fp))
        fig.add_trace(go.Scatter(x=[fp], y=[sens], mode="markers", name=f"{init_label(key)} operating point",
                                 legendgroup=str(key), showlegend=False, cliponaxis=False,  # whole at x = 0 or y = 1
                                 marker=dict(symbol="diamond", size=11, color=init_color(key),
                                             line=dict(color="black", width=1))))
    fig.update_layout(title=title, template="plotly_white", xaxis_title=axis_title(x), yaxis_title=axis_title(y),
                      yaxis_range=[-0.02, 1.04])
    if limits:  # the area counts up to max_fp: show that part (curves may run to ~100 FP/exam) and mark the limit
        limit = max(limits)
        right = max([1.2 * limit] + [1.05 * p for p in points])  # an operating point beyond the limit stays in view
        fig.update_xaxes(range=[-0.02 * right, right])
        fig.add_vline(x=limit, line=dict(color="black", dash="dash", width=1))
        # the label above the plot area, where no curve runs
        fig.add_annotation(x=limit, y=1, xref="x", yref="paper", yanchor="bottom", showarrow=False,
                           text=f"AUC limit {limit:g} FP/exam", font=dict(size=11))
        fig.update_layout(margin=dict(t=90))
    return fig


def operating_points(froc: Mapping[str, Any], thresholds: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """(FP/exam, sensitivity) of each init's FROC curve at its tuned threshold.

    Parameters
    ----------
    froc : mapping init → FrocCurve
    thresholds : mapping init → float
        Tuned probability thresholds; an init whose threshold is not on its curve's grid is left out.

    Returns
    -------
    dict init → (fp_per_exam, sensitivity)
    """
    out = {}
    for init, curve in froc.items():
        if init not in thresholds:
            continue
        idx = np.flatnonzero(np.isclose(curve.thresholds, thresholds[init]))
        if idx.size:
            out[init] = (float(curve.fp_per_exam[idx[0]]), float(curve.sensitivity[idx[0]]))
    return out


def evaluation_froc_figure(evaluation: Any, *, subset: str = "all", title: str | None = None):
    """FROC curves of every init of an evaluated run, with each init's tuned operating point.

    Parameters
    ----------
    evaluation : RunEvaluation
        From :func:`sapkit.evaluation.cohort.evaluate_run` (``.froc``, ``.thresholds``).
    subset : {"all", "large"}
        All lesions, or lesions ≥ 1 mL.
    title : str, optional
        Default "FROC, all lesions" or "FROC, lesions ≥ 1 mL".

    Returns
    -------
    plotly.graph_objects.Figure
        :func:`froc_figure` of ``evaluation.froc[init][subset]``.
    """
    if subset not in _SUBSET_TITLES:
        raise ConfigError(f"subset must be one of {tuple(_SUBSET_TITLES)}, got {subset!r}.")
    curves = {init: per_subset[subset] for init, per_subset in evaluation.froc.items()}
    points = operating_points(curves, {init: c.threshold for init, c in evaluation.thresholds.items()})
    return froc_figure(curves, operating_points=points, title=title or _SUBSET_TITLES[subset])


def threshold_curve_figure(choices: Mapping[str, Any], *, title: str | None = "Threshold tuning (tuning fold)"):
    """Median (or mean) patient F2 against the threshold, one line per init, the choice marked.

    Parameters
    ----------
    choices : mapping init → :class:`~sapkit.metrics.ThresholdChoice`
        E.g. ``RunEvaluation.thresholds``.

    Returns
    -------
    plotly.graph_objects.Figure
        One line and one diamond marker per init.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for init in sorted_inits(choices):
        c = choices[init]
        fig.add_trace(go.Scatter(x=c.curve["threshold"], y=c.curve["f2"], mode="lines+markers", name=init_label(init),
                                 legendgroup=init, line=dict(color=init_color(init))))
        fig.add_trace(go.Scatter(x=[c.threshold], y=[c.value], mode="markers", showlegend=False, legendgroup=init,
                                 marker=dict(symbol="diamond", size=12, color=init_color(init),
                                             line=dict(color="black", width=1)),
                                 hovertext=f"{init}: t = {c.threshold:g}, {c.statistic} F2 = {c.value:.3f}"))
    stat = next(iter(choices.values())).statistic if choices else "median"
    fig.update_layout(title=title, template="plotly_white", xaxis_title=axis_title("threshold"),
                      yaxis_title=f"{stat} patient F2")
    return fig


def comparison_pvalues(comparisons: pd.DataFrame, metric: str, *,
                       column: str = "p_bonferroni") -> dict[tuple[str, str], float]:
    """p-values of one metric from a comparisons table, keyed by the compared pair.

    Parameters
    ----------
    comparisons : DataFrame
        ``sapkit.evaluation.tables.compare_inits`` output (columns ``metric, a, b`` and ``column``).
    metric : str
    column : str
        ``p_bonferroni`` (corrected, default) or ``p_value``.

    Examples
    --------
    >>> t = pd.DataFrame({"metric": ["f2", "f2", "dice_mean"], "a": ["sap"] * 3, "b": ["scratch", "ssl", "ssl"],
    ...                   "p_bonferroni": [0.01, 0.5, 0.2]})
    >>> comparison_pvalues(t, "f2")
    {('sap', 'scratch'): 0.01, ('sap', 'ssl'): 0.5}
    """
    missing = {"metric", "a", "b", column} - set(comparisons.columns)
    if missing:
        raise ConfigError(f"comparisons table lacks columns {sorted(missing)}; build it with compare_inits.")
    rows = comparisons[comparisons["metric"] == metric]
    return {(str(r.a), str(r.b)): float(getattr(r, column)) for r in rows.itertuples()}


def evaluation_box_figure(evaluation: Any, *, metric: str = "f2", title: str | None = None):
    """Per-patient ``metric`` per init with Bonferroni-corrected significance brackets.

    Parameters
    ----------
    evaluation : RunEvaluation
        ``.patients`` (one row per test patient and init) and ``.comparisons``.
    metric : str
        A patient-level column, e.g. ``"f2"`` or ``"dice_mean"``.
    title : str, optional
        Default: the readable name of ``metric``.

    Returns
    -------
    plotly.graph_objects.Figure
        :func:`sapkit.plotting.figures.box_figure` with one bracket per comparison of ``metric``.
    """
    pvalues = comparison_pvalues(evaluation.comparisons, metric)
    return box_figure(evaluation.patients, value=metric, group="init", pvalues=pvalues,
                      title=title or axis_title(metric))


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
        raise ConfigError(f"lesion table lacks columns {sorted(missing)}; got {list(lesions.columns)}.")
    edges = np.asarray(bin_edges_ml, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"bin_edges_ml must be ≥ 2 increasing values, got {bin_edges_ml!r}.")
    labels = [f"{lo:g}–{hi:g} mL" if np.isfinite(hi) else f"≥ {lo:g} mL" for lo, hi in zip(edges[:-1], edges[1:])]
    rows = []
    volume = lesions[volume_col].to_numpy(dtype=float)
    bins = np.digitize(volume, edges[1:-1], right=False)
    for g in sorted_inits(pd.unique(lesions[group].astype(str))):
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

    Parameters
    ----------
    lesions : DataFrame
        E.g. ``RunEvaluation.lesions`` (one row per reference lesion and init).

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
        fig.add_trace(go.Bar(x=part["bin"], y=part["detection_rate"], name=init_label(g), marker_color=init_color(g),
                             text=[f"{k}/{n}" for k, n in zip(part["n_detected"], part["n_lesions"])],
                             textposition="outside"))
    fig.update_layout(title=title, template="plotly_white", barmode="group", yaxis_range=[0, 1.12],
                      xaxis_title="reference lesion volume", yaxis_title=axis_title("detection_rate"))
    return fig

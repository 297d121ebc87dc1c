"""Evaluation figures not covered by :mod:`sapkit.plotting.figures`: threshold tuning curve, lesion gallery.

Both return :class:`plotly.graph_objects.Figure` and compute nothing a metric module owns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from sapkit.errors import MetricInputError
from sapkit.plotting.figures import init_color

__all__ = ["threshold_curve_figure", "operating_points", "lesion_gallery_figure"]


def threshold_curve_figure(choices: Mapping[str, Any], *, title: str | None = "Threshold tuning (tuning fold)"):
    """Median (or mean) patient F2 against the threshold, one line per init, the choice marked.

    Parameters
    ----------
    choices : mapping init → :class:`~sapkit.metrics.ThresholdChoice`

    Returns
    -------
    plotly.graph_objects.Figure
        One line and one diamond marker per init.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for init, c in choices.items():
        fig.add_trace(go.Scatter(x=c.curve["threshold"], y=c.curve["f2"], mode="lines+markers", name=init,
                                 line=dict(color=init_color(init))))
        fig.add_trace(go.Scatter(x=[c.threshold], y=[c.value], mode="markers", showlegend=False,
                                 marker=dict(symbol="diamond", size=12, color=init_color(init),
                                             line=dict(color="black", width=1)),
                                 hovertext=f"{init}: t = {c.threshold:g}, {c.statistic} F2 = {c.value:.3f}"))
    stat = next(iter(choices.values())).statistic if choices else "median"
    fig.update_layout(title=title, template="plotly_white", xaxis_title="probability threshold",
                      yaxis_title=f"{stat} patient F2")
    return fig


def operating_points(froc: Mapping[str, Any], thresholds: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """(FP/exam, sensitivity) of each init's FROC curve at its tuned threshold."""
    out = {}
    for init, curve in froc.items():
        idx = np.flatnonzero(np.isclose(curve.thresholds, thresholds[init]))
        if idx.size:
            out[init] = (float(curve.fp_per_exam[idx[0]]), float(curve.sensitivity[idx[0]]))
    return out


def lesion_gallery_figure(items: pd.DataFrame, *, manifest: Any, pred_dir: str | Path, threshold: float,
                          max_items: int = 6, half_width_vox: int = 12, title: str | None = None):
    """Coronal b1000 crops centred on lesions or predictions, with GT (green) and prediction (cyan) outlines.

    Parameters
    ----------
    items : DataFrame
        Rows of ``lesions.csv`` or ``predictions.csv`` (``patient_id`` = scan id and
        ``centroid_[xyz]_vox``), e.g. the missed lesions or the false positives.
    manifest : Manifest
        Gives the b1000 image and the GT lesion label of each scan.
    pred_dir : path
        Folder of ``<scan_id>_prob.nii.gz``.
    threshold : float
        Binarisation of the probability map.
    max_items : int
        Largest number of panels.
    half_width_vox : int
        Half size of each crop in voxels.

    Returns
    -------
    plotly.graph_objects.Figure
        One panel per item (heatmap + up to two contour traces).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from sapkit.evaluation.cohort import PROB_SUFFIX, read_prob_map
    from sapkit.io.nifti import read_image, read_label

    needed = {"patient_id", "centroid_x_vox", "centroid_y_vox", "centroid_z_vox"}
    if not needed <= set(items.columns):
        raise MetricInputError(f"gallery items need columns {sorted(needed)}; got {list(items.columns)}")
    rows = items.head(max_items)
    n = len(rows)
    cols = min(3, max(n, 1))
    fig = make_subplots(rows=max(1, -(-n // cols)), cols=cols,
                        subplot_titles=[f"{r.patient_id} ({r.volume_ml:.2f} mL)" if hasattr(r, "volume_ml")
                                        else str(r.patient_id) for r in rows.itertuples()] or None)
    scans = manifest.scans.set_index("scan_id")
    cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for k, r in enumerate(rows.itertuples()):
        sid = str(r.patient_id)
        if sid not in cache:
            b1000, _, _ = read_image(scans.loc[sid, "b1000"], what="b1000")
            gt, _, _ = read_label(scans.loc[sid, "lesion_label"], what="lesion label")
            prob, _ = read_prob_map(Path(pred_dir) / f"{sid}{PROB_SUFFIX}")
            cache = {sid: (b1000, gt, prob >= threshold)}
        b1000, gt, pred = cache[sid]
        x, y, z = (int(round(v)) for v in (r.centroid_x_vox, r.centroid_y_vox, r.centroid_z_vox))
        xs = slice(max(x - half_width_vox, 0), x + half_width_vox + 1)
        zs = slice(max(z - half_width_vox, 0), z + half_width_vox + 1)
        row, col = k // cols + 1, k % cols + 1
        fig.add_trace(go.Heatmap(z=b1000[xs, y, zs].T, colorscale="gray", showscale=False), row=row, col=col)
        for mask, color in ((gt, "#2ca02c"), (pred, "#00e5ff")):
            m = mask[xs, y, zs].T.astype(float)
            if m.any():
                fig.add_trace(go.Contour(z=m, contours=dict(start=0.5, end=0.5, coloring="lines"), showscale=False,
                                         line=dict(color=color, width=2), hoverinfo="skip"), row=row, col=col)
    fig.update_layout(title=title, template="plotly_white", showlegend=False, height=300 * max(1, -(-n // cols)))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, scaleanchor="x")
    return fig

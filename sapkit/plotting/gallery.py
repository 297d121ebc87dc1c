"""Galleries of lesion crops: what a model missed and what it wrongly found.

Each panel is a coronal b1000 crop through a lesion or prediction centroid, drawn by
:func:`sapkit.plotting.slices.slice_traces`: the reference lesions outlined in green, the
thresholded prediction in cyan (:mod:`sapkit.plotting.colors`). Looking at failures is how one
learns what a model confuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sapkit.errors import ConfigError
from sapkit.io.run_paths import PredictionDir, RunDir
from sapkit.metrics import CENTROID_COLUMNS
from sapkit.plotting.colors import init_label
from sapkit.plotting.slices import _plane, slice_traces

__all__ = ["lesion_gallery_figure", "failure_items", "failure_gallery_figure", "GALLERY_KINDS"]

#: What a failure gallery shows: undetected reference lesions, or predicted lesions that hit none.
GALLERY_KINDS = ("missed", "false_positive")
_KINDS = GALLERY_KINDS


def lesion_gallery_figure(items: pd.DataFrame, *, manifest: Any, pred_dir: str | Path, threshold: float,
                          max_items: int = 6, half_width_vox: int = 12, title: str | None = None):
    """Coronal b1000 crops centred on lesions or predictions, with reference and prediction outlines.

    Parameters
    ----------
    items : DataFrame
        Rows of ``lesions.csv`` or ``predictions.csv`` (``scan_id`` and the centroid columns
        ``centroid_[xyz]_vox``, voxel indices), e.g. the missed lesions or the false positives.
    manifest : Manifest
        Gives the b1000 image and the reference lesion label of each scan.
    pred_dir : path
        Folder of ``<scan_id>_prob.nii.gz`` (``RunDir.predictions(init)``).
    threshold : float
        Binarisation of the probability map (``prob >= threshold``).
    max_items : int
        Largest number of panels (the first rows of ``items``).
    half_width_vox : int
        Half size of each crop in voxels; axes are in mm from the crop's corner.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        One panel per item, up to 3 per row (image, reference and prediction traces each);
        the legend names the two outlines once.
    """
    from plotly.subplots import make_subplots

    from sapkit.evaluation.cohort import read_prob_map
    from sapkit.io.nifti import read_image, read_label, spacing_from_affine

    needed = {"scan_id", *CENTROID_COLUMNS}
    if not needed <= set(items.columns):
        raise ConfigError(f"gallery items need columns {sorted(needed)}; got {list(items.columns)}")
    rows = items.head(max_items)
    n = len(rows)
    cols = min(3, max(n, 1))
    n_rows = max(1, -(-n // cols))
    fig = make_subplots(rows=n_rows, cols=cols,  # numbered: the explorer's gallery picker names panels so
                        subplot_titles=[f"{k}. {r.scan_id} ({r.volume_ml:.2f} mL)" if hasattr(r, "volume_ml")
                                        else f"{k}. {r.scan_id}" for k, r in enumerate(rows.itertuples(), 1)] or None)
    scans = manifest.scans.set_index("scan_id")
    cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]] = {}
    for k, r in enumerate(rows.itertuples()):
        sid = str(r.scan_id)
        if sid not in cache:  # items are usually grouped by scan: keep only the last scan read
            b1000, affine, _ = read_image(scans.loc[sid, "b1000"], what="b1000")
            reference, _, _ = read_label(scans.loc[sid, "lesion_label"], what="lesion label")
            prob, _ = read_prob_map(PredictionDir(pred_dir).probability_map(sid))
            cache = {sid: (b1000, reference, prob >= threshold, spacing_from_affine(affine))}
        b1000, reference, pred, spacing = cache[sid]
        x, y, z = (int(round(getattr(r, c))) for c in CENTROID_COLUMNS)
        crop = (slice(max(x - half_width_vox, 0), x + half_width_vox + 1), slice(None),
                slice(max(z - half_width_vox, 0), z + half_width_vox + 1))
        for trace in slice_traces(_plane(b1000[crop], 1, y), spacing_mm=(spacing[0], spacing[2]),
                                  reference=_plane(reference[crop], 1, y), prediction=_plane(pred[crop], 1, y),
                                  showlegend=k == 0):
            fig.add_trace(trace, row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(title=title, template="plotly_white", height=300 * n_rows, legend=dict(itemsizing="constant"))
    fig.update_xaxes(showticklabels=False)
    for k in range(n):
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{'' if k == 0 else k + 1}", row=k // cols + 1,
                         col=k % cols + 1)
    return fig


def failure_items(evaluation: Any, *, init: str = "sap", kind: str = "missed") -> tuple[pd.DataFrame, str]:
    """The rows a failure gallery shows, in its order, and its title.

    Parameters
    ----------
    evaluation : RunEvaluation
        ``.lesions`` (missed: ``detected`` false), ``.predictions`` (``false_positive``), ``.thresholds``.
    init : str
    kind : {"missed", "false_positive"}
        Undetected reference lesions, largest first, or false-positive lesions, highest maximum
        probability first (ties: table order).

    Returns
    -------
    (DataFrame, str)
        Rows of ``evaluation.lesions`` or ``evaluation.predictions`` (``scan_id``, centroid columns)
        and a title with their count.
    """
    if kind not in _KINDS:
        raise ConfigError(f"kind must be one of {_KINDS}, got {kind!r}.")
    if init not in evaluation.thresholds:
        raise ConfigError(f"init {init!r} was not evaluated; choose one of {list(evaluation.thresholds)}.")
    if kind == "missed":
        lesions = evaluation.lesions[evaluation.lesions["init"] == init]
        items = lesions[~lesions["detected"].astype(bool)].sort_values("volume_ml", ascending=False, kind="stable")
        return items, f"{init_label(init)}: largest missed lesions ({len(items)} missed)"
    preds = evaluation.predictions[evaluation.predictions["init"] == init]
    items = preds[preds["false_positive"].astype(bool)].sort_values("max_prob", ascending=False, kind="stable")
    return items, f"{init_label(init)}: most confident false positives ({len(items)})"


def failure_gallery_figure(evaluation: Any, run_dir: str | Path, *, init: str = "sap", kind: str = "missed",
                           max_items: int = 6, manifest: Any = None):
    """The largest missed lesions, or the most confident false positives, of one init.

    Parameters
    ----------
    evaluation : RunEvaluation
        From :func:`sapkit.evaluation.cohort.evaluate_run` (``.lesions``, ``.predictions``, ``.thresholds``).
    run_dir : path
        The run folder (its manifest and ``predictions/<init>/``).
    init : str
        Initialisation shown, at its tuned threshold.
    kind : {"missed", "false_positive"}
        See :func:`failure_items`.
    max_items : int
    manifest : Manifest, optional
        Default: the run's ``data/`` manifest.

    Returns
    -------
    plotly.graph_objects.Figure
        :func:`lesion_gallery_figure` of :func:`failure_items`, panels numbered 1, 2, … (the
        explorer's gallery picker opens panel ``k`` in the 3D viewer).
    """
    from sapkit.data.manifest import load_manifest

    items, title = failure_items(evaluation, init=init, kind=kind)
    rd = RunDir(run_dir)
    if manifest is None:
        manifest = load_manifest(rd.data, check_files=False)
    return lesion_gallery_figure(items, manifest=manifest, pred_dir=rd.predictions(init),
                                 threshold=evaluation.thresholds[init].threshold, max_items=max_items, title=title)

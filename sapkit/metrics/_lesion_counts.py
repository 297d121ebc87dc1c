"""Detection counts of one scan at every threshold of a grid (FROC and threshold-tuning input).

The counts at threshold ``t`` are exactly those of :func:`~sapkit.metrics.lesion_report` at ``t``
(``docs/metrics.md`` §10–§11), with the same threshold rule (``>=`` in the map's dtype, see
:func:`~sapkit.metrics.threshold_mask`), obtained without the per-lesion scores: the foreground is located
once at the lowest threshold and each higher threshold only re-labels the small crops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import MetricInputError
from sapkit.metrics import _components as C
from sapkit.metrics._binarise import threshold_in_dtype
from sapkit.metrics._lesion_matching import match, overlaps, parse_hit
from sapkit.metrics._lesion_report import _REL_TOL, _check_inputs
from sapkit.metrics._lesion_tables import COUNT_COLUMNS, detection_ratios
from sapkit.validation import check_connectivity

if TYPE_CHECKING:  # pandas is imported where a table is built, not with the package
    import pandas as pd

__all__ = ["lesion_counts_by_threshold"]


def lesion_counts_by_threshold(
    gt_mask: npt.ArrayLike,
    prob_map: npt.ArrayLike,
    *,
    spacing_mm: float | Sequence[float],
    thresholds: Sequence[float],
    connectivity: int = 26,
    hit: str = "any",
    large_lesion_ml: float = 1.0,
    scan_id: str = "",
    precision: str = "lesion",
) -> pd.DataFrame:
    """Detection counts of one case at every threshold of a grid (for FROC and threshold tuning).

    The foreground is located once at the lowest threshold; each higher threshold only
    re-labels the small crops (a prediction at ``t`` is a subset of the one at ``t_min``).

    Parameters
    ----------
    gt_mask : (X, Y, Z) array of bool or int
    prob_map : (X, Y, Z) float array in [0, 1]
    spacing_mm : float or sequence of float
        Voxel size per axis in mm (volumes for the ≥ 1 mL subset).
    thresholds : sequence of float
        Each in (0, 1].
    connectivity, hit, large_lesion_ml, scan_id, precision
        As in :func:`~sapkit.metrics.lesion_report`.

    Returns
    -------
    DataFrame
        One row per threshold, columns :data:`~sapkit.metrics.COUNT_COLUMNS` (``scan_id, threshold,
        n_lesions, n_large_lesions, n_predictions, tp, fn, fp, tp_large, fp_large, sensitivity,
        precision, f2``) — identical to the :func:`~sapkit.metrics.lesion_report` counts at that
        threshold.
    """
    detection_ratios(0, 0, 0, 0, precision=precision)  # checks the rule up front
    ts = sorted({float(t) for t in thresholds})
    if not ts or ts[0] <= 0 or ts[-1] > 1:
        raise MetricInputError(f"thresholds must be a non-empty list of values in (0, 1], got {list(thresholds)!r}")
    gt, prob, _, sp, _ = _check_inputs(gt_mask, None, prob_map, ts[0], spacing_mm, None)
    conn = check_connectivity(connectivity, error=MetricInputError)
    rule = parse_hit(hit)
    voxel_ml = sp[0] * sp[1] * sp[2] / 1000.0
    large_voxels = large_lesion_ml / voxel_ml * (1 - _REL_TOL)
    gt_xyz, _ = C.foreground(gt, name="gt_mask")
    pred_xyz, values = C.foreground(prob, threshold=ts[0], name="prob_map")
    keys = ("n_lesions", "n_large_lesions", "n_predictions", "tp", "fp", "tp_large", "fp_large")
    totals = {t: dict.fromkeys(keys, 0) for t in ts}
    for region in C.regions(gt_xyz, pred_xyz, C._as_3d(gt).shape, pad=(1, 1, 1)):
        g_lab, n_g = C.label(region.scatter(gt_xyz, region.gt_index), conn)
        g_sizes = np.bincount(g_lab.ravel(), minlength=n_g + 1).astype(np.int64)
        g_large = g_sizes >= large_voxels
        g_large[0] = False
        prob_crop = region.scatter(pred_xyz, region.pred_index, values, dtype=values.dtype)
        for t in ts:
            p_lab, n_p = C.label(prob_crop >= np.asarray(threshold_in_dtype(t, values.dtype), values.dtype), conn)
            p_sizes = np.bincount(p_lab.ravel(), minlength=n_p + 1).astype(np.int64)
            gid, pid, inter = overlaps(g_lab, p_lab)
            matched, pred_hit = match(n_g, n_p, g_sizes, p_sizes, gid, pid, inter, rule)
            detected = np.array([bool(m) for m in matched])
            fp_mask = ~pred_hit
            fp_mask[0] = False
            row = totals[t]
            row["n_lesions"] += n_g
            row["n_large_lesions"] += int(g_large.sum())
            row["n_predictions"] += n_p
            row["tp"] += int(detected[1:].sum())
            row["tp_large"] += int((detected & g_large).sum())
            row["fp"] += int(fp_mask.sum())
            row["fp_large"] += int((fp_mask & (p_sizes >= large_voxels)).sum())
    rows = []
    for t in ts:
        r = totals[t]
        fn = r["n_lesions"] - r["tp"]
        sensitivity, prec, f2 = detection_ratios(r["tp"], fn, r["fp"], r["n_predictions"], precision=precision)
        rows.append({"scan_id": scan_id, "threshold": t, **r, "fn": fn, "sensitivity": sensitivity,
                     "precision": prec, "f2": f2})
    import pandas as pd

    return pd.DataFrame(rows, columns=list(COUNT_COLUMNS))


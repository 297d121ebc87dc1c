"""Lesion outcomes of one scan for the explorer and the viewer: true positives, false positives, misses.

The counting is :func:`sapkit.metrics.lesion_report` with the run's evaluation settings
(``config.eval``: hit rule, connectivity, precision rule), so a predicted lesion is a true or false
positive here exactly when ``eval/predictions.csv`` says so, and the per-case sensitivity and F2 are
the values of ``eval/patients.csv`` at the same threshold. This module only ties the report's rows to
the voxels of each lesion (:func:`sapkit.inference.postprocess.lesion_components` numbers predicted
lesions by volume, the report by position) and paints an outcome label map
(value ``k`` = :data:`sapkit.plotting.colors.OUTCOMES` ``[k - 1]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.config import EvalConfig
from sapkit.errors import SapkitError
from sapkit.imaging.components import component_stats, label_components
from sapkit.inference.postprocess import lesion_components
from sapkit.metrics import CENTROID_COLUMNS, LesionReport, lesion_report
from sapkit.plotting.colors import OUTCOME_LABELS, OUTCOMES

__all__ = ["CaseOutcomes", "case_outcomes"]

_DECIMALS = 3  # centroids (voxels) are compared rounded: the report computes them per crop


def _keys(labels: npt.NDArray, n: int) -> list[tuple]:
    """(n_voxels, rounded centroid) of components 1..n of a label array."""
    stats = component_stats(labels)
    return [(int(stats.voxel_counts[k]), *np.round(stats.centroids[k], _DECIMALS).tolist()) for k in range(1, n + 1)]


def _row_key(row) -> tuple:
    return (int(row["n_voxels"]), *(round(float(row[c]), _DECIMALS) for c in CENTROID_COLUMNS))


def _rows_by_key(table: pd.DataFrame) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for i, row in table.iterrows():
        out.setdefault(_row_key(row), i)
    return out


@dataclass(frozen=True)
class CaseOutcomes:
    """Outcomes of one scan at one threshold.

    Attributes
    ----------
    component_map : (X, Y, Z) int32
        Predicted lesions, ``k`` on the voxels of the lesion with ``lesion_id`` ``k`` (by volume).
    predictions : DataFrame
        :func:`~sapkit.inference.postprocess.lesion_components`' table plus ``pred_id`` (the report's
        number, as in ``eval/predictions.csv``), ``false_positive`` and ``outcome``
        (``"true positive"`` / ``"false positive"``).
    lesions : DataFrame
        The report's reference-lesion table (``detected``, centroids in voxels).
    missed_map : (X, Y, Z) bool
        Voxels of the reference lesions no prediction detected.
    report : LesionReport
        ``report.patient`` holds the per-case sensitivity, precision, F2 and counts.
    """

    component_map: npt.NDArray[np.int32]
    predictions: pd.DataFrame
    lesions: pd.DataFrame
    missed_map: npt.NDArray[np.bool_]
    report: LesionReport

    @property
    def sensitivity(self) -> float:
        return float(self.report.patient.sensitivity)

    @property
    def f2(self) -> float:
        return float(self.report.patient.f2)

    @property
    def missed(self) -> pd.DataFrame:
        """Reference lesions no prediction detected."""
        return self.lesions[~self.lesions["detected"].astype(bool)]

    def label_map(self) -> npt.NDArray[np.uint8]:
        """(X, Y, Z) uint8: 1 true-positive lesion, 2 false-positive lesion, 3 missed reference lesion, 0 else."""
        out = np.zeros(self.component_map.shape, np.uint8)
        fp_ids = self.predictions.loc[self.predictions["false_positive"].astype(bool), "lesion_id"].to_numpy()
        predicted = self.component_map > 0
        out[predicted] = 1
        out[np.isin(self.component_map, fp_ids) & predicted] = 2
        out[self.missed_map & ~predicted] = 3
        return out


def case_outcomes(reference: npt.ArrayLike, prob_map: npt.ArrayLike, *, threshold: float,
                  spacing_mm: float | Sequence[float], eval_config: EvalConfig = EvalConfig(),
                  scan_id: str = "") -> CaseOutcomes:
    """Each predicted lesion true or false positive, each reference lesion detected or missed.

    Parameters
    ----------
    reference : (X, Y, Z) bool or int array
        Reference lesions (any non-zero value).
    prob_map : (X, Y, Z) float array in [0, 1]
        Lesion probability; lesions are ``prob_map >= threshold`` (the kit's one rule).
    threshold : float in (0, 1]
    spacing_mm : float or sequence of 3 float
        Voxel size in mm.
    eval_config : EvalConfig
        The run's ``config.eval`` (connectivity, hit and precision rules, NSD settings).
    scan_id : str

    Returns
    -------
    CaseOutcomes

    Examples
    --------
    >>> gt = np.zeros((12, 12, 12), bool); gt[1:4, 1:4, 1:4] = True; gt[8:10, 8:10, 8:10] = True
    >>> p = np.zeros((12, 12, 12), np.float32); p[2:4, 2:4, 2:4] = 0.9; p[6, 0:3, 10] = 0.8
    >>> o = case_outcomes(gt, p, threshold=0.5, spacing_mm=1.0)
    >>> o.predictions["outcome"].tolist(), o.sensitivity, len(o.missed)
    (['true positive', 'false positive'], 0.5, 1)
    >>> np.bincount(o.label_map().ravel()).tolist()
    [1709, 8, 3, 8]
    """
    e = eval_config
    gt = np.asarray(reference)
    report = lesion_report(gt, prob_map=prob_map, threshold=threshold, spacing_mm=spacing_mm,
                           connectivity=e.connectivity, hit=e.hit, precision=e.precision, tolerance_mm=e.tolerance_mm,
                           nsd_mode=e.nsd_mode, large_lesion_ml=e.large_lesion_ml, oversize_ml=e.oversize_ml,
                           scan_id=scan_id)
    components, table = lesion_components(prob_map, threshold=threshold, spacing_mm=spacing_mm,
                                          connectivity=e.connectivity, scan_id=scan_id)
    preds = report.predictions
    by_key = _rows_by_key(preds)
    rows = [by_key.get(k) for k in _keys(components, len(table))]
    if any(r is None for r in rows):
        raise SapkitError(f"scan {scan_id!r}: a predicted lesion has no row in the lesion report; "
                          "the components and the report disagree (report this as a bug)")
    table = table.copy()
    table["pred_id"] = [int(preds.at[r, "pred_id"]) for r in rows]
    table["false_positive"] = [bool(preds.at[r, "false_positive"]) for r in rows]
    table["outcome"] = [OUTCOME_LABELS[OUTCOMES[1] if fp else OUTCOMES[0]] for fp in table["false_positive"]]
    lesions = report.lesions
    missed_map = np.zeros(gt.shape, bool)
    if len(lesions) and not lesions["detected"].astype(bool).all():
        ref_labels, n_ref = label_components(gt, connectivity=e.connectivity)
        detected = {_row_key(r): bool(r["detected"]) for _, r in lesions.iterrows()}
        missed_ids = [k for k, key in enumerate(_keys(ref_labels, n_ref), start=1) if not detected.get(key, True)]
        missed_map = np.isin(ref_labels, missed_ids)
    return CaseOutcomes(components.astype(np.int32, copy=False), table, lesions, missed_map, report)

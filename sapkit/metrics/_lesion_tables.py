"""The lesion tables and per-scan summary of the lesion-wise evaluation, and the ratios behind them.

One definition of every column list (``lesions.csv``, ``predictions.csv``, the per-threshold
counts) and of the per-scan counts and scores (``docs/metrics.md`` §4–§8):

- Sensitivity = TP / (TP + FN) (NaN without GT lesions); precision (``precision="lesion"``, the
  default, panoptica's convention) = TP / (TP + FP) with TP the detected GT lesions (NaN when there is
  neither a TP nor an FP); F2 = 5PR / (4P + R) = 5TP / (5TP + 4FN + FP), defined as 0 when
  P = R = 0 and NaN only when TP = FN = FP = 0. ``precision="prediction"`` counts predicted
  components instead: (components hitting a lesion) / (all components), F2 = F-beta(P, R) with the
  same 0 / NaN rules (a bridging prediction raises it, a split lesion lowers it).
- ≥ 1 mL sensitivity is NaN for scans without large lesions; ≥ 1 mL FP counts predicted
  components ≥ 1 mL credited to no GT lesion.
- Volumes in mL; centroids in voxel indices of the scan, ``(X, Y, Z)`` file order.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from sapkit.errors import MetricInputError

if TYPE_CHECKING:  # pandas is imported when a table is first asked for (``sapkit evaluate`` needs none)
    import pandas as pd

__all__ = [
    "LESION_ID_COLUMNS",
    "CENTROID_COLUMNS",
    "LESION_COLUMNS",
    "PREDICTION_COLUMNS",
    "COUNT_COLUMNS",
    "LesionParams",
    "PatientSummary",
    "LesionReport",
    "PRECISION_RULES",
    "OVERSIZE_ML",
    "f_beta",
    "detection_ratios",
]

#: What a true positive is for precision: a detected GT lesion, or a predicted component that hits one.
PRECISION_RULES = ("lesion", "prediction")

#: Columns that name and size one lesion in every lesion table of the kit: the scan it lies in,
#: its 1-based id in that scan, its size in voxels and its volume in mL.
LESION_ID_COLUMNS = ("scan_id", "lesion_id", "n_voxels", "volume_ml")
#: Lesion centroid in voxel indices (mean voxel position, ``(X, Y, Z)`` file order).
CENTROID_COLUMNS = ("centroid_x_vox", "centroid_y_vox", "centroid_z_vox")
#: GT-lesion table of the evaluation (``eval/lesions.csv``): one row per GT lesion.
LESION_COLUMNS = (
    *LESION_ID_COLUMNS, "large", "bone_label", "bone_region", "detected", "dice", "iou", "nsd", "matched_pred_ids",
    *CENTROID_COLUMNS,
)
#: Predicted-component table of the evaluation (``eval/predictions.csv``): one row per component.
PREDICTION_COLUMNS = (
    "scan_id", "pred_id", "n_voxels", "volume_ml", "large", "false_positive", "max_prob", "matched_lesion_ids",
    "merges_lesions", "oversized", *CENTROID_COLUMNS,
)
#: Volume (mL) above which a predicted component is flagged ``oversized`` (docs/metrics.md §15): far
#: above any bone metastasis of the synthetic cohort (99.9th percentile ~12 mL) and about six
#: vertebral bodies; a component this size is an organ, the body outline or a degenerate model.
OVERSIZE_ML = 200.0
#: Detection counts of one scan at one threshold (FROC and threshold-tuning input).
COUNT_COLUMNS = (
    "scan_id", "threshold", "n_lesions", "n_large_lesions", "n_predictions", "tp", "fn", "fp", "tp_large",
    "fp_large", "sensitivity", "precision", "f2",
)
_BOOL_COLUMNS = ("detected", "large", "false_positive", "merges_lesions", "oversized")
_INT_COLUMNS = ("n_voxels", "lesion_id", "pred_id", "bone_label")
_STR_COLUMNS = ("scan_id", "bone_region", "matched_pred_ids", "matched_lesion_ids")


def f_beta(precision: float, recall: float, *, beta: float = 2.0) -> float:
    """F-beta score ``(1 + β²)PR / (β²P + R)``; 0 when P = R = 0, NaN if either is NaN.

    Examples
    --------
    >>> round(f_beta(0.5, 1.0), 4), round(f_beta(1.0, 0.5), 4), f_beta(0.0, 0.0)
    (0.8333, 0.5556, 0.0)
    """
    p, r = float(precision), float(recall)
    if math.isnan(p) or math.isnan(r):
        return float("nan")
    b2 = beta * beta
    denominator = b2 * p + r
    return 0.0 if denominator == 0 else (1 + b2) * p * r / denominator


def _ratio(num: float, den: float) -> float:
    return float("nan") if den == 0 else float(num) / float(den)


def detection_ratios(tp: int, fn: int, fp: int, n_predictions: int, *, precision: str = "lesion") -> tuple[float, float, float]:
    """Sensitivity, precision and F2 of detection counts under a precision rule (see the module docstring).

    Examples
    --------
    >>> detection_ratios(1, 1, 0, 1)  # one prediction bridging two lesions, one of them counted TP
    (0.5, 1.0, 0.5555555555555556)
    >>> detection_ratios(1, 0, 0, 2, precision="prediction")  # a lesion split into two hitting components
    (1.0, 1.0, 1.0)
    >>> detection_ratios(0, 0, 0, 0)
    (nan, nan, nan)
    """
    if precision not in PRECISION_RULES:
        raise MetricInputError(f"precision must be one of {PRECISION_RULES}, got {precision!r}")
    sensitivity = _ratio(tp, tp + fn)
    if precision == "lesion":
        return sensitivity, _ratio(tp, tp + fp), _ratio(5 * tp, 5 * tp + 4 * fn + fp)
    p = _ratio(n_predictions - fp, n_predictions)
    if tp + fn == 0 and n_predictions == 0:
        return sensitivity, p, float("nan")
    f2 = 0.0 if math.isnan(p) or math.isnan(sensitivity) else f_beta(p, sensitivity)
    return sensitivity, p, f2


@dataclass(frozen=True)
class LesionParams:
    """Parameters of a lesion-wise evaluation (reported next to every result)."""

    spacing_mm: tuple[float, ...]
    connectivity: int = 26
    hit: str = "any"
    tolerance_mm: float = 2.0
    nsd_mode: str = "surface"
    large_lesion_ml: float = 1.0
    threshold: float | None = None
    lesion_scores: str = "whole"
    precision: str = "lesion"
    oversize_ml: float = OVERSIZE_ML

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) for JSON."""
        d = dataclasses.asdict(self)
        d["spacing_mm"] = list(self.spacing_mm)
        return d


@dataclass(frozen=True)
class PatientSummary:
    """Patient-level results of one scan (one row of ``patients.csv``). Volumes in mL."""

    scan_id: str
    n_lesions: int
    n_large_lesions: int
    n_predictions: int
    tp: int
    fn: int
    fp: int
    sensitivity: float
    precision: float
    f2: float
    tp_large: int
    sensitivity_large: float
    fp_large: int
    dice_mean: float
    dice_detected: float
    nsd_detected: float
    global_dice: float
    gt_volume_ml: float
    pred_volume_ml: float
    n_merging: int = 0
    n_oversized: int = 0

    @property
    def flagged(self) -> bool:
        """True when a predicted component joins ≥ 2 lesions or exceeds the size bound (§15):
        detection counts of this scan then say little about segmentation."""
        return bool(self.n_merging or self.n_oversized)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (one row of ``patients.csv``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LesionReport:
    """Everything the lesion-wise evaluation of one scan produces.

    The tables are built from their rows on first access (pandas is not imported before), so
    a caller that needs only the summary or the rows — ``sapkit evaluate`` on one case — stays
    light.

    Attributes
    ----------
    lesion_rows : tuple of dict
        One dict per GT lesion, keys :data:`LESION_COLUMNS`.
    prediction_rows : tuple of dict
        One dict per predicted component, keys :data:`PREDICTION_COLUMNS`.
    patient : PatientSummary
    params : LesionParams
    lesions : DataFrame
        ``lesion_rows`` as a table, columns :data:`LESION_COLUMNS`.
    predictions : DataFrame
        ``prediction_rows`` as a table, columns :data:`PREDICTION_COLUMNS`.
    """

    lesion_rows: tuple[dict[str, Any], ...]
    prediction_rows: tuple[dict[str, Any], ...]
    patient: PatientSummary
    params: LesionParams

    @cached_property
    def lesions(self) -> pd.DataFrame:
        return _frame(self.lesion_rows, LESION_COLUMNS)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        return _frame(self.prediction_rows, PREDICTION_COLUMNS)

    def __repr__(self) -> str:
        p = self.patient
        return (f"LesionReport(scan: {p.scan_id!r}; lesions: {p.n_lesions}; TP {p.tp} FN {p.fn} FP {p.fp}; "
                f"F2 {p.f2:.3f}; hit: {self.params.hit}; connectivity: {self.params.connectivity})")


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Table of ``rows``; an empty table keeps meaningful dtypes (bool, int64, float64, object)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(columns))
    if not rows:
        for col in columns:
            if col in _BOOL_COLUMNS:
                frame[col] = frame[col].astype(bool)
            elif col in _INT_COLUMNS:
                frame[col] = frame[col].astype(np.int64)
            elif col not in _STR_COLUMNS:
                frame[col] = frame[col].astype(np.float64)
    return frame


def _mean(values: Sequence[float]) -> float:
    """Mean skipping NaN (NaN when nothing is left), summed as pandas' ``Series.mean`` sums."""
    v = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(v)
    n = int(keep.sum())
    return float(np.where(keep, v, 0.0).sum() / n) if n else float("nan")


def _summarise(lesions: Sequence[Mapping[str, Any]], preds: Sequence[Mapping[str, Any]], *, scan_id: str,
               global_dice: float, gt_volume_ml: float, pred_volume_ml: float,
               precision: str = "lesion") -> PatientSummary:
    """Per-scan counts and scores from the lesion and prediction rows of one scan."""
    n = len(lesions)
    detected = [r for r in lesions if r["detected"]]
    tp = len(detected)
    fn = n - tp
    fp = sum(bool(r["false_positive"]) for r in preds)
    n_large = sum(bool(r["large"]) for r in lesions)
    tp_large = sum(bool(r["large"]) for r in detected)
    fp_large = sum(bool(r["false_positive"]) and bool(r["large"]) for r in preds)
    sensitivity, prec, f2 = detection_ratios(tp, fn, fp, len(preds), precision=precision)
    return PatientSummary(
        scan_id=scan_id, n_lesions=n, n_large_lesions=n_large, n_predictions=len(preds),
        tp=tp, fn=fn, fp=fp, sensitivity=sensitivity, precision=prec, f2=f2, tp_large=tp_large, sensitivity_large=_ratio(tp_large, n_large),
        fp_large=fp_large, dice_mean=_mean([r["dice"] for r in lesions]),
        dice_detected=_mean([r["dice"] for r in detected]),
        nsd_detected=_mean([r["nsd"] for r in detected]),
        global_dice=global_dice, gt_volume_ml=gt_volume_ml, pred_volume_ml=pred_volume_ml,
        n_merging=sum(bool(r.get("merges_lesions")) for r in preds), n_oversized=sum(bool(r.get("oversized")) for r in preds),
    )

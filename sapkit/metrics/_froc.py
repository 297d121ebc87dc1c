"""FROC: pooled lesion sensitivity against mean false positives per exam (docs/metrics.md §10).

Definition
----------
At every threshold of a grid (0.05 … 0.95 by default) the probability maps are binarised and
their connected components matched to the GT lesions. Sensitivity is pooled over all lesions of
all exams (``Σ TP / Σ lesions``); the x-axis is the mean number of FP components per exam. The
curve starts at (0, 0); points are ordered by FP/exam (ties by sensitivity); beyond the last
point it is extended flat, and it is cut at the limit by linear interpolation. The area under
the piecewise-linear curve is *not* normalised: its maximum equals the limit (15 FP/exam for
all lesions, 4 for lesions ≥ 1 mL), the scale of the paper's 7.10 for SAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sapkit.errors import MetricInputError

if TYPE_CHECKING:  # pandas is imported where a table is built, not with the package
    import pandas as pd

__all__ = ["FrocCurve", "froc_curve", "froc_auc"]

_SUBSETS = {"all": ("tp", "n_lesions", "fp"), "large": ("tp_large", "n_large_lesions", "fp_large")}


@dataclass(frozen=True)
class FrocCurve:
    """One FROC curve.

    Attributes
    ----------
    thresholds : (T,) float64
        Probability thresholds, ascending.
    fp_per_exam : (T,) float64
        Mean false-positive components per exam at each threshold.
    sensitivity : (T,) float64
        Pooled lesion-level sensitivity at each threshold.
    auc : float
        Unnormalised area up to ``max_fp`` (maximum = ``max_fp``).
    max_fp : float
        Integration limit in FP per exam.
    subset : str
        ``"all"`` lesions or ``"large"`` (≥ 1 mL: sensitivity over large lesions, FP = large FP).
    n_exams, n_lesions : int
    last_fp_per_exam : float
        Largest measured FP/exam (the lowest threshold's point); beyond it the curve is
        extrapolated flat to ``max_fp``.
    extrapolated_share : float
        Share of the AUC's x-range ``[0, max_fp]`` that lies beyond ``last_fp_per_exam`` (0 when
        the curve reaches the limit); on small cohorts most of AUC@15 can be this flat part.
    """

    thresholds: npt.NDArray[np.float64]
    fp_per_exam: npt.NDArray[np.float64]
    sensitivity: npt.NDArray[np.float64]
    auc: float
    max_fp: float
    subset: str
    n_exams: int
    n_lesions: int

    @property
    def last_fp_per_exam(self) -> float:
        """Largest measured FP per exam (NaN without points)."""
        finite = self.fp_per_exam[np.isfinite(self.fp_per_exam)]
        return float(finite.max()) if finite.size else float("nan")

    @property
    def extrapolated_share(self) -> float:
        """Share of ``[0, max_fp]`` covered only by the flat extension beyond the last measured point."""
        last = self.last_fp_per_exam
        return float("nan") if np.isnan(last) else max(0.0, self.max_fp - last) / self.max_fp

    def to_frame(self) -> pd.DataFrame:
        """Table ``threshold, fp_per_exam, sensitivity``."""
        import pandas as pd

        return pd.DataFrame({"threshold": self.thresholds, "fp_per_exam": self.fp_per_exam,
                             "sensitivity": self.sensitivity})

    def __repr__(self) -> str:
        return (f"FrocCurve(subset: {self.subset}; AUC@{self.max_fp:g} = {self.auc:.3f} "
                f"({self.extrapolated_share:.0%} of the range extrapolated flat); exams: {self.n_exams}; "
                f"lesions: {self.n_lesions}; thresholds: {self.thresholds.size})")


def froc_auc(fp_per_exam: npt.ArrayLike, sensitivity: npt.ArrayLike, *, max_fp: float) -> float:
    """Unnormalised area under a FROC curve up to ``max_fp`` FP/exam.

    Parameters
    ----------
    fp_per_exam, sensitivity : (T,) array of float
        Operating points (any order); (0, 0) is added.
    max_fp : float
        Limit (> 0) in FP per exam.

    Returns
    -------
    float
        Area in sensitivity × FP/exam; in [0, max_fp].

    Examples
    --------
    >>> froc_auc([1.0, 2.0], [0.5, 0.8], max_fp=4.0)
    2.5
    """
    x = np.asarray(fp_per_exam, dtype=np.float64).ravel()
    y = np.asarray(sensitivity, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise MetricInputError(f"fp_per_exam has {x.size} values but sensitivity has {y.size}; give one per threshold")
    if not max_fp > 0:
        raise MetricInputError(f"max_fp must be > 0, got {max_fp!r}")
    keep = np.isfinite(x) & np.isfinite(y)
    x = np.concatenate([[0.0], x[keep]])
    y = np.concatenate([[0.0], y[keep]])
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    inside = x <= max_fp
    xs, ys = list(x[inside]), list(y[inside])
    beyond = np.flatnonzero(~inside)
    if beyond.size:  # cut at the limit by linear interpolation
        x1, y1 = x[beyond[0]], y[beyond[0]]
        x0, y0 = xs[-1], ys[-1]
        ys.append(y0 + (y1 - y0) * (max_fp - x0) / (x1 - x0))
    else:  # extend flat
        ys.append(ys[-1])
    xs.append(max_fp)
    xa, ya = np.asarray(xs), np.asarray(ys)
    return float(np.sum((xa[1:] - xa[:-1]) * (ya[1:] + ya[:-1]) / 2.0))


def froc_curve(counts: pd.DataFrame, *, max_fp: float = 15.0, subset: str = "all") -> FrocCurve:
    """FROC curve from per-exam, per-threshold detection counts.

    Parameters
    ----------
    counts : DataFrame
        Rows of :func:`~sapkit.metrics.lesion_counts_by_threshold` for every exam (column
        ``scan_id`` tells exams apart; every exam must have every threshold).
    max_fp : float
        Integration limit in FP per exam (15 for all lesions, 4 for ≥ 1 mL in the paper).
    subset : {"all", "large"}
        All lesions, or lesions ≥ 1 mL with ≥ 1 mL false positives.

    Returns
    -------
    FrocCurve
    """
    if subset not in _SUBSETS:
        raise MetricInputError(f"subset must be one of {tuple(_SUBSETS)}, got {subset!r}")
    tp_col, n_col, fp_col = _SUBSETS[subset]
    missing = [c for c in ("scan_id", "threshold", tp_col, n_col, fp_col) if c not in counts.columns]
    if missing:
        raise MetricInputError(f"counts table lacks column(s) {missing}; build it with lesion_counts_by_threshold")
    if counts.empty:
        raise MetricInputError("counts table is empty; evaluate at least one exam")
    per_t = counts.groupby("threshold").agg(tp=(tp_col, "sum"), n=(n_col, "sum"), fp=(fp_col, "sum"),
                                            exams=("scan_id", "nunique")).sort_index()
    n_exams = int(counts["scan_id"].nunique())
    incomplete = per_t.index[per_t["exams"] != n_exams].tolist()
    if incomplete:
        raise MetricInputError(f"thresholds {incomplete} are missing for some exams; compute every threshold per exam")
    n_lesions = int(per_t["n"].iloc[0])
    sens = (per_t["tp"] / per_t["n"]).to_numpy(np.float64) if n_lesions else np.full(len(per_t), np.nan)
    fp = (per_t["fp"] / n_exams).to_numpy(np.float64)
    auc = froc_auc(fp, sens, max_fp=max_fp) if n_lesions else float("nan")
    return FrocCurve(per_t.index.to_numpy(np.float64), fp, sens, auc, float(max_fp), subset, n_exams, n_lesions)

"""Statistics for the results tables: median with bootstrap CI, IQR, paired/unpaired tests, ICC.

Conventions (docs/metrics.md §12, docs/reference_values.md)
-----------------------------------------------------------
- Medians carry a **percentile** bootstrap 95 % CI: ``n_resamples`` (1000) resamples with
  replacement drawn at once as ``rng.integers(0, n, (n_resamples, n))`` from
  ``np.random.default_rng(seed)`` (seed 42), the median of each, then the 2.5th and 97.5th
  percentiles (numpy's linear interpolation) — the same draws and percentiles as
  ``scipy.stats.bootstrap(..., method="percentile", n_resamples=1000, rng=default_rng(42))``.
- IQR = (25th, 75th) percentiles, linear interpolation.
- NaN values are dropped before any statistic (patients without lesions have no sensitivity).
- Wilcoxon signed-rank for paired patient-level metrics, Mann–Whitney U for lesion-level
  metrics (different lesion sets), both two-sided; Bonferroni multiplies p by the number of
  tests (capped at 1); Shapiro–Wilk reports normality.
- ICC from two-way ANOVA mean squares (Shrout & Fleiss 1979); ICC(2,1) (two-way random,
  absolute agreement, single measures) is the tumour-burden agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from sapkit.errors import EvaluationError

__all__ = [
    "MedianCI",
    "TestResult",
    "median_ci",
    "iqr",
    "wilcoxon_signed_rank",
    "mann_whitney_u",
    "bonferroni",
    "shapiro_wilk",
    "icc",
    "tumour_burden_icc",
]

_ICC_KINDS = ("1,1", "2,1", "3,1")


def _clean(values: npt.ArrayLike, name: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[~np.isnan(x)]


@dataclass(frozen=True)
class MedianCI:
    """Median, percentile-bootstrap confidence interval and interquartile range.

    Attributes
    ----------
    median, ci_low, ci_high, q1, q3 : float
        NaN when there are no values.
    n : int
        Number of (non-NaN) values.
    confidence : float
    n_resamples, seed : int
    """

    median: float
    ci_low: float
    ci_high: float
    q1: float
    q3: float
    n: int
    confidence: float = 0.95
    n_resamples: int = 1000
    seed: int = 42

    def format(self, digits: int = 3) -> str:
        """``"0.448 [0.300, 0.600]"`` (the paper's layout); ``"—"`` without values."""
        if self.n == 0:
            return "—"
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.median)} [{f.format(self.ci_low)}, {f.format(self.ci_high)}]"

    def format_iqr(self, digits: int = 3) -> str:
        """``"0.200–0.700"``; ``"—"`` without values."""
        if self.n == 0:
            return "—"
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.q1)}–{f.format(self.q3)}"


@dataclass(frozen=True)
class TestResult:
    """Result of a hypothesis test (two-sided)."""

    test: str
    statistic: float
    p_value: float
    n: int

    __test__ = False  # not a pytest test class


def iqr(values: npt.ArrayLike) -> tuple[float, float]:
    """25th and 75th percentiles (linear interpolation); NaN values dropped.

    Examples
    --------
    >>> iqr([1, 2, 3, 4, 5])
    (2.0, 4.0)
    """
    x = _clean(values)
    if x.size == 0:
        return float("nan"), float("nan")
    q1, q3 = np.percentile(x, [25, 75])
    return float(q1), float(q3)


def median_ci(values: npt.ArrayLike, *, n_resamples: int = 1000, seed: int = 42,
              confidence: float = 0.95) -> MedianCI:
    """Median with a seeded percentile-bootstrap confidence interval and the IQR.

    Parameters
    ----------
    values : (N,) array of float
        One value per patient (or lesion); NaN values are dropped.
    n_resamples : int
        Bootstrap resamples (1000 in the paper's convention).
    seed : int
        Seed of ``np.random.default_rng``.
    confidence : float
        Two-sided level in (0, 1).

    Returns
    -------
    MedianCI
    """
    if n_resamples < 1:
        raise EvaluationError(f"n_resamples must be ≥ 1, got {n_resamples!r}")
    if not 0 < confidence < 1:
        raise EvaluationError(f"confidence must be in (0, 1), got {confidence!r}")
    x = _clean(values)
    if x.size == 0:
        nan = float("nan")
        return MedianCI(nan, nan, nan, nan, nan, 0, confidence, n_resamples, seed)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, (n_resamples, x.size))
    medians = np.median(x[idx], axis=-1)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(medians, [100 * alpha, 100 * (1 - alpha)])
    q1, q3 = iqr(x)
    return MedianCI(float(np.median(x)), float(low), float(high), q1, q3, int(x.size), confidence, n_resamples, seed)


def wilcoxon_signed_rank(a: npt.ArrayLike, b: npt.ArrayLike) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of paired values (e.g. per-patient F2 of two inits).

    Pairs with a NaN on either side are dropped; zero differences are discarded (Wilcox).
    Returns NaN p when fewer than one non-zero difference remains.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise EvaluationError(f"paired test needs equal lengths, got {x.size} and {y.size}; align by patient first")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if np.count_nonzero(x - y) == 0:
        return TestResult("wilcoxon", float("nan"), float("nan"), int(x.size))
    res = _sps.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    return TestResult("wilcoxon", float(res.statistic), float(res.pvalue), int(x.size))


def mann_whitney_u(a: npt.ArrayLike, b: npt.ArrayLike) -> TestResult:
    """Two-sided Mann–Whitney U test of two independent samples (e.g. lesion Dice of two inits)."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return TestResult("mann-whitney", float("nan"), float("nan"), int(x.size + y.size))
    res = _sps.mannwhitneyu(x, y, alternative="two-sided")
    return TestResult("mann-whitney", float(res.statistic), float(res.pvalue), int(x.size + y.size))


def bonferroni(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bonferroni-adjusted p-values ``min(1, p × m)``, m = number of non-NaN p-values.

    Examples
    --------
    >>> bonferroni([0.01, 0.04, float("nan")]).tolist()
    [0.02, 0.08, nan]
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = int(np.count_nonzero(~np.isnan(p)))
    return np.minimum(p * m, 1.0)


def shapiro_wilk(values: npt.ArrayLike) -> TestResult:
    """Shapiro–Wilk normality test (NaN result below 3 values)."""
    x = _clean(values)
    if x.size < 3:
        return TestResult("shapiro-wilk", float("nan"), float("nan"), int(x.size))
    res = _sps.shapiro(x)
    return TestResult("shapiro-wilk", float(res.statistic), float(res.pvalue), int(x.size))


def icc(ratings: npt.ArrayLike, *, kind: str = "2,1") -> float:
    """Intraclass correlation (Shrout & Fleiss 1979) of an (n targets × k raters) table.

    Parameters
    ----------
    ratings : (n, k) array of float
        One row per target (patient), one column per rater (e.g. GT and predicted burden).
    kind : {"1,1", "2,1", "3,1"}
        ICC(1,1) one-way random; ICC(2,1) two-way random, absolute agreement, single measures;
        ICC(3,1) two-way mixed, consistency.

    Returns
    -------
    float

    References
    ----------
    Shrout P.E., Fleiss J.L., "Intraclass correlations: uses in assessing rater reliability",
    Psychological Bulletin 86 (1979) 420–428.

    Examples
    --------
    >>> r = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> round(icc(r, kind="2,1"), 3)
    0.29
    """
    if kind not in _ICC_KINDS:
        raise EvaluationError(f"kind must be one of {_ICC_KINDS}, got {kind!r}")
    y = np.asarray(ratings, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise EvaluationError(f"ratings must be an (n ≥ 2 targets, k ≥ 2 raters) table, got shape {y.shape}")
    if np.isnan(y).any():
        raise EvaluationError("ratings contain NaN; drop incomplete targets first")
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_total = ((y - grand) ** 2).sum()
    ss_err = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_err) / (n * (k - 1))
    if kind == "1,1":
        den = msr + (k - 1) * msw
        return float("nan") if den == 0 else float((msr - msw) / den)
    if kind == "3,1":
        den = msr + (k - 1) * mse
        return float("nan") if den == 0 else float((msr - mse) / den)
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    return float("nan") if den == 0 else float((msr - mse) / den)


def tumour_burden_icc(gt_volume_ml: npt.ArrayLike, pred_volume_ml: npt.ArrayLike) -> float:
    """ICC(2,1) between GT and predicted total tumour volume per patient (mL)."""
    g = np.asarray(gt_volume_ml, dtype=np.float64).ravel()
    p = np.asarray(pred_volume_ml, dtype=np.float64).ravel()
    if g.shape != p.shape:
        raise EvaluationError(f"need one predicted burden per patient: {g.size} GT vs {p.size} predicted values")
    keep = ~(np.isnan(g) | np.isnan(p))
    if keep.sum() < 2:
        return float("nan")
    return icc(np.stack([g[keep], p[keep]], axis=1), kind="2,1")

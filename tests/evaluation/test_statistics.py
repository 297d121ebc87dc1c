"""sapkit.evaluation.statistics against scipy and the Shrout & Fleiss worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sapkit.errors import EvaluationError
from sapkit.evaluation.statistics import (
    bonferroni,
    icc,
    iqr,
    mann_whitney_u,
    median_ci,
    shapiro_wilk,
    tumour_burden_icc,
    wilcoxon_signed_rank,
    MedianCI,
)

SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def test_icc_shrout_fleiss():
    assert icc(SHROUT_FLEISS, kind="1,1") == pytest.approx(0.166, abs=1e-3)
    assert icc(SHROUT_FLEISS, kind="2,1") == pytest.approx(0.290, abs=1e-3)
    assert icc(SHROUT_FLEISS, kind="3,1") == pytest.approx(0.715, abs=1e-3)
    with pytest.raises(EvaluationError, match="kind"):
        icc(SHROUT_FLEISS, kind="2,k")
    with pytest.raises(EvaluationError, match="shape"):
        icc([1, 2, 3])


def test_tumour_burden_icc_perfect_and_biased():
    g = np.array([1.0, 5.0, 2.0, 10.0, 0.5])
    assert tumour_burden_icc(g, g) == pytest.approx(1.0)
    assert tumour_burden_icc(g, g + 3.0) < icc(np.stack([g, g + 3.0], 1), kind="3,1")  # absolute agreement
    assert tumour_burden_icc(g, g + 3.0) == pytest.approx(icc(np.stack([g, g + 3.0], 1), kind="2,1"))


def test_median_ci_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(1).gamma(2.0, size=33)
    ours = median_ci(x, n_resamples=1000, seed=42)
    ref = sps.bootstrap((x,), np.median, method="percentile", n_resamples=1000,
                        rng=np.random.default_rng(42), vectorized=True).confidence_interval
    assert (ours.ci_low, ours.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert ours.median == pytest.approx(np.median(x))
    assert (ours.q1, ours.q3) == pytest.approx(tuple(np.percentile(x, [25, 75])))
    assert median_ci(x) == ours  # seeded: reproducible
    assert ours.ci_low <= ours.median <= ours.ci_high


def test_median_ci_drops_nan_and_handles_empty():
    m = median_ci([1.0, np.nan, 3.0, 2.0])
    assert m.n == 3 and m.median == 2.0
    e = median_ci([np.nan])
    assert e.n == 0 and math.isnan(e.median) and e.format() == "—"
    assert MedianCI(0.4481, 0.3, 0.6, 0.2, 0.7, 10).format() == "0.448 [0.300, 0.600]"
    assert iqr([1, 2, 3, 4, 5]) == (2.0, 4.0)


def test_wilcoxon_exact_small_sample_and_scipy():
    # 5 positive differences with distinct ranks: exact two-sided p = 2/32
    r = wilcoxon_signed_rank([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])
    assert r.p_value == pytest.approx(0.0625)
    a = np.random.default_rng(2).normal(size=20)
    b = a + np.random.default_rng(3).normal(0.3, 1, size=20)
    b[4] = np.nan  # dropped pairwise
    r = wilcoxon_signed_rank(a, b)
    keep = ~np.isnan(b)
    assert r.n == 19 and r.p_value == pytest.approx(sps.wilcoxon(a[keep], b[keep]).pvalue)
    assert math.isnan(wilcoxon_signed_rank([1, 2], [1, 2]).p_value)
    with pytest.raises(EvaluationError, match="equal lengths"):
        wilcoxon_signed_rank([1, 2], [1])


def test_mann_whitney_exact_separation():
    # complete separation of 3 vs 3: exact two-sided p = 2 / C(6, 3) = 0.1
    r = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert r.p_value == pytest.approx(0.1) and r.statistic == 0.0


def test_bonferroni_and_shapiro():
    assert bonferroni([0.01, 0.04, 0.5]).tolist() == pytest.approx([0.03, 0.12, 1.0])
    x = np.random.default_rng(0).normal(size=30)
    r = shapiro_wilk(x)
    assert r.p_value == pytest.approx(sps.shapiro(x).pvalue) and r.n == 30
    assert math.isnan(shapiro_wilk([1.0, 2.0]).p_value)

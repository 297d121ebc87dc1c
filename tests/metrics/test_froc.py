"""sapkit.metrics._froc: FROC curve and its unnormalised AUC (docs/metrics.md §10)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.errors import MetricInputError
from sapkit.metrics import froc_auc, froc_curve, lesion_counts_by_threshold


def test_auc_hand_computed_flat_extension():
    # (0,0) -> (1, .5) -> (2, .8) -> flat to 4: 0.25 + 0.65 + 1.6
    assert froc_auc([1.0, 2.0], [0.5, 0.8], max_fp=4.0) == pytest.approx(2.5)
    # order of the points does not matter
    assert froc_auc([2.0, 1.0], [0.8, 0.5], max_fp=4.0) == pytest.approx(2.5)


def test_auc_cut_at_limit_by_interpolation():
    # (0,0) -> (2, 0.4) -> (6, 0.8); limit 4 -> y(4) = 0.6: 0.4 + (0.4+0.6)/2*2 = 1.4
    assert froc_auc([2.0, 6.0], [0.4, 0.8], max_fp=4.0) == pytest.approx(1.4)


def test_auc_bounds_and_perfect_detector():
    assert froc_auc([0.0], [1.0], max_fp=15.0) == pytest.approx(15.0)  # maximum = the limit
    assert froc_auc([3.0], [0.0], max_fp=15.0) == 0.0
    with pytest.raises(MetricInputError, match="max_fp"):
        froc_auc([1.0], [0.5], max_fp=0)


def _counts():
    rows = []
    # two exams, three thresholds; exam a has 2 lesions (1 large), exam b has 2 lesions
    for pid, data in {"a": [(0.3, 2, 1, 3, 1, 1), (0.5, 1, 1, 1, 1, 0), (0.7, 0, 1, 0, 0, 0)],
                      "b": [(0.3, 2, 0, 1, 0, 0), (0.5, 2, 0, 0, 0, 0), (0.7, 1, 0, 0, 0, 0)]}.items():
        for t, tp, n_large, fp, tp_large, fp_large in data:
            rows.append({"scan_id": pid, "threshold": t, "n_lesions": 2, "n_large_lesions": n_large, "tp": tp,
                         "fn": 2 - tp, "fp": fp, "tp_large": tp_large, "fp_large": fp_large,
                         "f2": 5 * tp / (5 * tp + 4 * (2 - tp) + fp)})
    return pd.DataFrame(rows)


def test_froc_curve_pooled_sensitivity_and_mean_fp():
    curve = froc_curve(_counts(), max_fp=15.0)
    assert curve.thresholds.tolist() == [0.3, 0.5, 0.7]
    assert curve.sensitivity.tolist() == pytest.approx([1.0, 0.75, 0.25])
    assert curve.fp_per_exam.tolist() == pytest.approx([2.0, 0.5, 0.0])
    # points: (0,0) (0,.25) (.5,.75) (2,1) then flat to 15
    expected = 0.5 * (0.25 + 0.75) / 2 + 1.5 * (0.75 + 1.0) / 2 + 13 * 1.0
    assert curve.auc == pytest.approx(expected)
    large = froc_curve(_counts(), max_fp=4.0, subset="large")
    assert large.n_lesions == 1 and large.sensitivity.tolist() == [1.0, 1.0, 0.0]
    frame = curve.to_frame()
    assert list(frame.columns) == ["threshold", "fp_per_exam", "sensitivity"]
    assert frame["fp_per_exam"].tolist() == pytest.approx([2.0, 0.5, 0.0])


def test_froc_from_real_counts_and_missing_threshold():
    rng = np.random.default_rng(0)
    gt = np.zeros((20, 20, 20), np.uint8)
    gt[3:7, 3:7, 3:7] = 1
    prob = np.zeros((20, 20, 20), np.float32)
    prob[3:7, 3:7, 3:7] = 0.6
    prob[12:15, 12:15, 12:15] = 0.4 + 0.1 * rng.random((3, 3, 3)).astype(np.float32)
    c = lesion_counts_by_threshold(gt, prob, spacing_mm=(1, 1, 1), thresholds=[0.2, 0.55, 0.8], scan_id="p")
    assert c["tp"].tolist() == [1, 1, 0] and c["fp"].tolist() == [1, 0, 0]
    curve = froc_curve(c, max_fp=15.0)
    assert curve.auc == pytest.approx(0 + 15 * 1.0)  # sensitivity 1 already at 0 FP
    with pytest.raises(MetricInputError, match="missing"):
        froc_curve(pd.concat([c, c.assign(scan_id="q").iloc[:2]]))


def test_froc_reports_last_point_and_extrapolated_share():
    import pandas as pd

    from sapkit.metrics import froc_curve

    counts = pd.DataFrame({"scan_id": ["a", "a", "b", "b"], "threshold": [0.3, 0.6, 0.3, 0.6],
                           "tp": [2, 1, 1, 1], "n_lesions": [2, 2, 2, 2], "fp": [4, 1, 2, 0],
                           "tp_large": [0, 0, 0, 0], "n_large_lesions": [0, 0, 0, 0], "fp_large": [0, 0, 0, 0]})
    c = froc_curve(counts, max_fp=15.0)
    assert c.last_fp_per_exam == 3.0  # (4 + 2) / 2 exams at the lowest threshold
    assert c.extrapolated_share == 12.0 / 15.0
    assert froc_curve(counts, max_fp=2.0).extrapolated_share == 0.0

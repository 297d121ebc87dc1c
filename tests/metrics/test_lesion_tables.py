"""sapkit.metrics._lesion_tables: column lists, per-scan counts and ratios (docs/metrics.md §5–§7)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sapkit.metrics import (
    CENTROID_COLUMNS,
    COUNT_COLUMNS,
    LESION_COLUMNS,
    LESION_ID_COLUMNS,
    PREDICTION_COLUMNS,
    f_beta,
)
from sapkit.metrics._lesion_tables import _frame, _summarise


def test_f_beta_reference_values():
    assert f_beta(0.5, 1.0) == pytest.approx(0.8333, abs=1e-4)
    assert f_beta(1.0, 0.5) == pytest.approx(0.5556, abs=1e-4)
    assert f_beta(0.0, 0.0) == 0.0
    assert f_beta(0.5, 0.5, beta=1.0) == 0.5
    assert math.isnan(f_beta(float("nan"), 1.0))


def test_every_table_starts_with_the_scan_and_shares_the_centroids():
    assert LESION_COLUMNS[:4] == LESION_ID_COLUMNS == ("scan_id", "lesion_id", "n_voxels", "volume_ml")
    assert LESION_COLUMNS[-3:] == CENTROID_COLUMNS == PREDICTION_COLUMNS[-3:]
    assert PREDICTION_COLUMNS[0] == COUNT_COLUMNS[0] == "scan_id"
    for cols in (LESION_COLUMNS, PREDICTION_COLUMNS, COUNT_COLUMNS):
        assert len(set(cols)) == len(cols)


def test_empty_tables_keep_meaningful_dtypes():
    lesions = _frame([], LESION_COLUMNS)
    assert list(lesions.columns) == list(LESION_COLUMNS) and lesions.empty
    assert lesions["detected"].dtype == bool and lesions["lesion_id"].dtype == np.int64
    assert lesions["dice"].dtype == np.float64 and lesions["scan_id"].dtype == object
    preds = _frame([], PREDICTION_COLUMNS)
    assert preds["false_positive"].dtype == bool and preds["max_prob"].dtype == np.float64


def test_summary_counts_and_f2_from_hand_built_tables():
    """3 GT lesions (2 detected, 1 of them large) and 3 predictions (1 large FP): hand-computed ratios."""
    lesions = pd.DataFrame({"detected": [True, True, False], "large": [True, False, True],
                            "dice": [0.8, 0.4, 0.0], "nsd": [0.9, 0.5, 0.0]}).to_dict("records")
    preds = pd.DataFrame({"false_positive": [False, True, True], "large": [False, True, False]}).to_dict("records")
    s = _summarise(lesions, preds, scan_id="p7", global_dice=0.5, gt_volume_ml=2.0, pred_volume_ml=1.0)
    assert (s.scan_id, s.n_lesions, s.n_large_lesions, s.n_predictions) == ("p7", 3, 2, 3)
    assert (s.tp, s.fn, s.fp, s.tp_large, s.fp_large) == (2, 1, 2, 1, 1)
    assert s.sensitivity == 2 / 3 and s.precision == 0.5 and s.sensitivity_large == 0.5
    assert s.f2 == pytest.approx(f_beta(0.5, 2 / 3)) and s.f2 == 10 / (10 + 4 + 2)
    assert s.dice_mean == pytest.approx(0.4) and s.dice_detected == pytest.approx(0.6)
    assert s.nsd_detected == pytest.approx(0.7)
    assert list(s.to_dict())[0] == "scan_id"


def test_summary_means_skip_nan_and_sum_as_pandas_does():
    """The per-scan means are pandas' ``Series.mean`` (NaN skipped) to the last bit, without pandas."""
    from sapkit.metrics._lesion_tables import _mean

    rng = np.random.default_rng(3)
    for n in (1, 7, 9, 130, 1000):
        v = rng.random(n)
        v[rng.random(n) < 0.2] = np.nan
        expected = pd.Series(v).mean()
        assert (math.isnan(expected) and math.isnan(_mean(v))) or _mean(v) == expected
    assert math.isnan(_mean([])) and math.isnan(_mean([float("nan")]))


def test_report_tables_are_built_from_the_rows_on_first_access():
    from sapkit.metrics import lesion_report

    gt = np.zeros((12, 12, 12), np.uint8)
    gt[2:5, 2:5, 2:5] = 1
    gt[8:10, 8:10, 8:10] = 1
    pred = np.zeros_like(gt)
    pred[3:6, 3:6, 3:6] = 1
    r = lesion_report(gt, pred, spacing_mm=1.0, scan_id="s")
    assert "lesions" not in vars(r)  # nothing built yet
    pd.testing.assert_frame_equal(r.lesions, pd.DataFrame(list(r.lesion_rows)))
    pd.testing.assert_frame_equal(r.predictions, pd.DataFrame(list(r.prediction_rows)))  # max_prob NaN: masks
    assert r.lesions is r.lesions and list(r.lesions.columns) == list(LESION_COLUMNS)
    assert [row["detected"] for row in r.lesion_rows] == [True, False]

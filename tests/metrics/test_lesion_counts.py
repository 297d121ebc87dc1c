"""sapkit.metrics._lesion_counts: per-threshold counts equal the lesion report at every threshold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sapkit.errors import MetricInputError
from sapkit.metrics import COUNT_COLUMNS, lesion_counts_by_threshold, lesion_report


def _random_case(seed, shape=(40, 36, 48)):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    gt = (noise > 0.12).astype(np.uint8)
    prob = np.clip(ndimage.shift(noise, (0.8, 0, -0.5), order=1) * 4 + 0.4, 0, 1).astype(np.float32)
    return gt, prob


def test_prob_map_threshold_consistent_with_counts_and_mask():
    gt, prob = _random_case(5)
    thresholds = [0.3, 0.5, 0.7]
    counts = lesion_counts_by_threshold(gt, prob, spacing_mm=(1, 1, 1), thresholds=thresholds)
    for t in thresholds:
        rp = lesion_report(gt, prob_map=prob, threshold=t, spacing_mm=(1, 1, 1))
        rm = lesion_report(gt, (prob >= t).astype(np.uint8), spacing_mm=(1, 1, 1))
        row = counts[counts["threshold"] == t].iloc[0]
        assert (rp.patient.tp, rp.patient.fp, rp.patient.fn) == (rm.patient.tp, rm.patient.fp, rm.patient.fn)
        assert (row["tp"], row["fp"], row["fn"]) == (rp.patient.tp, rp.patient.fp, rp.patient.fn)
        assert row["f2"] == pytest.approx(rp.patient.f2, nan_ok=True)
        assert (rp.predictions["max_prob"] >= t).all()
    # float16 maps give the same answer (thresholds compare exact stored values)
    c16 = lesion_counts_by_threshold(gt, prob.astype(np.float16), spacing_mm=(1, 1, 1), thresholds=thresholds)
    r16 = lesion_report(gt, prob_map=prob.astype(np.float16), threshold=0.5, spacing_mm=(1, 1, 1))
    assert c16[c16.threshold == 0.5]["tp"].iloc[0] == r16.patient.tp


def test_columns_large_subset_and_bad_thresholds():
    gt, prob = _random_case(6, shape=(30, 30, 30))
    counts = lesion_counts_by_threshold(gt, prob, spacing_mm=2.0, thresholds=[0.7, 0.4], scan_id="s1",
                                        large_lesion_ml=0.05, hit="iou:0.3", connectivity=6)
    assert list(counts.columns) == list(COUNT_COLUMNS)
    assert counts["threshold"].tolist() == [0.4, 0.7] and set(counts["scan_id"]) == {"s1"}
    for t, row in zip((0.4, 0.7), counts.itertuples()):
        p = lesion_report(gt, prob_map=prob, threshold=t, spacing_mm=(2, 2, 2), large_lesion_ml=0.05, hit="iou:0.3",
                          connectivity=6).patient
        assert (row.tp_large, row.fp_large, row.n_large_lesions) == (p.tp_large, p.fp_large, p.n_large_lesions)
    with pytest.raises(MetricInputError, match="thresholds must be"):
        lesion_counts_by_threshold(gt, prob, spacing_mm=2.0, thresholds=[0.0, 0.5])
    with pytest.raises(MetricInputError, match="connectivity"):
        lesion_counts_by_threshold(gt, prob, spacing_mm=2.0, thresholds=[0.5], connectivity=4)

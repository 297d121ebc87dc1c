"""Arrays of the other byte order (big-endian NIfTI files, byte views) count like native ones."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.metrics import lesion_counts_by_threshold, lesion_report


@pytest.fixture
def case():
    gt = np.zeros((20, 20, 20), np.uint8)
    gt[2:6, 2:6, 2:6] = 1
    gt[12:15, 12:15, 12:15] = 1
    prob = np.zeros(gt.shape, np.float32)
    prob[3:6, 3:6, 3:6] = 0.8
    prob[0, 19, 19] = 0.6
    return gt, prob


@pytest.mark.parametrize("order", [">", "<"])
def test_report_and_counts_do_not_depend_on_byte_order(case, order):
    gt, prob = case
    other_prob = prob.astype(prob.dtype.newbyteorder(order))
    other_gt = gt.astype(np.dtype("u2").newbyteorder(order))
    ref = lesion_report(gt, prob_map=prob, threshold=0.5, spacing_mm=1.0)
    got = lesion_report(other_gt, prob_map=other_prob, threshold=0.5, spacing_mm=1.0)
    assert (got.patient.tp, got.patient.fn, got.patient.fp) == (ref.patient.tp, ref.patient.fn, ref.patient.fp) == (1, 1, 1)
    assert got.patient.global_dice == ref.patient.global_dice
    thresholds = [0.5, 0.7, 0.9]
    a = lesion_counts_by_threshold(gt, prob, spacing_mm=1.0, thresholds=thresholds)
    b = lesion_counts_by_threshold(other_gt, other_prob, spacing_mm=1.0, thresholds=thresholds)
    assert a.equals(b) and a["fp"].tolist() == [1, 0, 0]

"""sapkit.plotting.outcomes: each predicted lesion true or false positive as sapkit.metrics counts it."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.config import EvalConfig
from sapkit.metrics import lesion_report
from sapkit.plotting.outcomes import case_outcomes

SPACING = (2.0, 2.0, 3.0)


def _scan(seed: int):
    """Reference balls and a probability map with hits, near misses, a merger and false positives."""
    rng = np.random.default_rng(seed)
    shape = (40, 36, 30)
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    gt = np.zeros(shape, np.uint8)
    prob = np.zeros(shape, np.float32)
    for _ in range(8):
        c = rng.integers(4, np.array(shape) - 4)
        d = sum(((g - x) / r) ** 2 for g, x, r in zip(grid, c, rng.uniform(1.0, 3.0, 3)))
        gt[d <= 1] = 1
        if rng.random() < 0.6:  # found, shifted by up to 2 voxels (some only touch the lesion)
            s = c + rng.integers(-2, 3, 3)
            d2 = sum(((g - x) / r) ** 2 for g, x, r in zip(grid, s, rng.uniform(0.8, 2.5, 3)))
            prob = np.maximum(prob, np.clip(1 - 0.4 * d2, 0, 1).astype(np.float32) * rng.uniform(0.5, 1.0))
    for _ in range(5):  # false positives
        c = rng.integers(2, np.array(shape) - 2)
        d = sum(((g - x) / 1.5) ** 2 for g, x in zip(grid, c))
        prob = np.maximum(prob, np.clip(0.9 - 0.5 * d, 0, 1).astype(np.float32))
    return gt, prob


@pytest.mark.parametrize("hit", ["any", "iou:0.1"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outcome_of_each_lesion_is_the_reports(seed, hit):
    gt, prob = _scan(seed)
    e = EvalConfig(hit=hit, connectivity=26)
    o = case_outcomes(gt, prob, threshold=0.5, spacing_mm=SPACING, eval_config=e, scan_id="s")
    report = lesion_report(gt, prob_map=prob, threshold=0.5, spacing_mm=SPACING, hit=hit, scan_id="s")
    preds = report.predictions.set_index("pred_id")
    assert len(o.predictions) == len(preds) > 0 and o.predictions["false_positive"].any()
    assert sorted(o.predictions["pred_id"]) == sorted(preds.index)  # one-to-one
    for r in o.predictions.itertuples():
        assert r.false_positive == bool(preds.at[r.pred_id, "false_positive"])
        assert r.n_voxels == preds.at[r.pred_id, "n_voxels"]
        assert r.outcome == ("false positive" if r.false_positive else "true positive")
        assert np.count_nonzero(o.component_map == r.lesion_id) == r.n_voxels
    assert (o.sensitivity, o.f2) == (report.patient.sensitivity, report.patient.f2)
    # the outcome map: every predicted voxel 1 or 2 by its lesion, missed lesions 3, nothing else
    m = o.label_map()
    fp_ids = o.predictions.loc[o.predictions["false_positive"], "lesion_id"]
    assert np.count_nonzero(m == 2) == int(o.predictions.loc[o.predictions["false_positive"], "n_voxels"].sum())
    assert np.array_equal(m == 2, np.isin(o.component_map, fp_ids))
    assert np.array_equal((m == 1) | (m == 2), o.component_map > 0)
    missed = report.lesions[~report.lesions["detected"]]
    assert np.count_nonzero(o.missed_map) == int(missed["n_voxels"].sum())
    if hit == "any":  # a missed lesion touches no prediction, so all its voxels are 3
        assert np.count_nonzero(m == 3) == int(missed["n_voxels"].sum())


def test_nothing_predicted_every_lesion_missed():
    gt, prob = _scan(0)
    o = case_outcomes(gt, np.zeros_like(prob), threshold=0.5, spacing_mm=SPACING)
    assert o.predictions.empty and o.sensitivity == 0.0
    assert np.array_equal(o.label_map() == 3, gt > 0)

"""One threshold rule everywhere (issue 15, fix 2): ``prob >= t`` compared in the map's dtype.

At every threshold of the default grid, a map holding exactly ``float32(t)`` (below ``t`` in
float64 for 0.35, 0.45, 0.65, 0.7, 0.9, 0.95 …) must give the same masks in threshold tuning
(``lesion_counts_by_threshold``), the lesion report, ``sapkit evaluate`` and predict's lesion
masks (``lesion_components``).
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from sapkit.cli import main
from sapkit.config import EvalConfig
from sapkit.inference.postprocess import lesion_components
from sapkit.metrics import lesion_counts_by_threshold, lesion_report, threshold_in_dtype, threshold_mask

GRID = EvalConfig().thresholds


def _case(t: float, dtype=np.float32):
    """GT with two lesions; the map holds dtype(t) on lesion 1, the next value below it on lesion 2,
    and dtype(t) on one false-positive blob."""
    gt = np.zeros((24, 20, 20), np.uint8)
    gt[2:6, 2:6, 2:6] = 1
    gt[12:16, 2:6, 2:6] = 1
    prob = np.zeros(gt.shape, dtype)
    at = np.asarray(t, dtype=dtype)
    below = np.nextafter(at, np.asarray(0, dtype))
    prob[2:6, 2:6, 2:6] = at
    prob[12:16, 2:6, 2:6] = below
    prob[2:5, 14:17, 14:17] = at
    return gt, prob


def test_grid_has_values_where_float32_rounds_down():
    low = [t for t in GRID if float(np.float32(t)) < t]
    assert {0.35, 0.45, 0.65, 0.7, 0.9, 0.95} <= set(low)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_tuning_report_and_predict_agree_at_every_grid_threshold(dtype):
    for t in GRID:
        gt, prob = _case(t, dtype)
        mask = threshold_mask(prob, t)
        assert int(mask.sum()) == 64 + 27, t  # lesion 1 and the FP blob, not lesion 2
        counts = lesion_counts_by_threshold(gt, prob, spacing_mm=1.0, thresholds=[t]).iloc[0]
        report = lesion_report(gt, prob_map=prob, threshold=t, spacing_mm=1.0).patient
        assert (counts["tp"], counts["fn"], counts["fp"]) == (1, 1, 1), t
        assert (report.tp, report.fn, report.fp) == (1, 1, 1), t
        components, table = lesion_components(prob, threshold=t, spacing_mm=1.0)
        assert np.array_equal(components > 0, mask), t
        assert table["n_voxels"].tolist() == [64, 27], t


def test_counts_on_the_whole_grid_match_reports():
    gt, prob = _case(0.7)
    prob[12:16, 2:6, 2:6] = np.float32(0.35)
    counts = lesion_counts_by_threshold(gt, prob, spacing_mm=1.0, thresholds=GRID).set_index("threshold")
    for t in GRID:
        rep = lesion_report(gt, prob_map=prob, threshold=t, spacing_mm=1.0).patient
        assert (counts.loc[t, "tp"], counts.loc[t, "fp"]) == (rep.tp, rep.fp), t
    assert counts.loc[0.35, "tp"] == 2 and counts.loc[0.4, "tp"] == 1 and counts.loc[0.7, "tp"] == 1
    assert counts.loc[0.75, "tp"] == 0


def test_threshold_in_dtype():
    assert threshold_in_dtype(0.7, np.float32) == float(np.float32(0.7)) < 0.7
    assert threshold_in_dtype(0.7, np.float64) == 0.7


def _save(arr, path, slope=None):
    img = nib.Nifti1Image(arr, np.eye(4))
    if slope is not None:
        img.header.set_slope_inter(slope, 0)
    nib.save(img, str(path))
    return str(path)


def test_cli_agrees_at_every_grid_threshold(tmp_path):
    for t in GRID:
        gt, prob = _case(t)
        g = _save(gt, tmp_path / "gt.nii")
        p = _save(prob, tmp_path / "prob.nii.gz")
        out = tmp_path / "case.json"
        out.unlink(missing_ok=True)
        assert main(["evaluate", "--gt", g, "--pred", p, "--prob", "--threshold", str(t), "--json", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert (doc["tp"], doc["fn"], doc["fp"]) == (1, 1, 1), t


def test_cli_uint8_percent_map(tmp_path):
    """A uint8 map of percent values (scl_slope 0.01): 70 % is foreground at --threshold 0.7."""
    gt, _ = _case(0.7)
    pct = np.zeros(gt.shape, np.uint8)
    pct[2:6, 2:6, 2:6] = 70
    pct[12:16, 2:6, 2:6] = 69
    g = _save(gt, tmp_path / "gt.nii.gz")
    p = _save(pct, tmp_path / "pct.nii.gz", slope=0.01)
    for t, expected in ((0.7, 1), (0.69, 2), (0.71, 0)):
        out = tmp_path / f"{t}.json"
        assert main(["evaluate", "--gt", g, "--pred", p, "--prob", "--threshold", str(t), "--json", str(out)]) == 0
        assert json.loads(out.read_text())["tp"] == expected, t
    for k in range(1, 20):  # every grid value stored as a percent reads back as float32(k / 20)
        pct[2:6, 2:6, 2:6] = 5 * k
        _save(pct, tmp_path / "pct.nii.gz", slope=0.01)
        from sapkit.evaluation.readers import read_prob_map

        prob, _ = read_prob_map(tmp_path / "pct.nii.gz")
        assert prob[3, 3, 3] == np.float32(round(0.05 * k, 2))

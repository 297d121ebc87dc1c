"""``precision="lesion"|"prediction"``: expected values worked out by hand in each test, the report,
the per-threshold counts and ``sapkit evaluate`` agree, and the rules move in opposite directions
for a bridging prediction and a split lesion."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from sapkit.cli import main
from sapkit.errors import MetricInputError
from sapkit.metrics import lesion_counts_by_threshold, lesion_report


def _bridging_plus_fp():
    """Two GT lesions joined by one predicted component, plus one false-positive component."""
    gt = np.zeros((30, 12, 12), np.uint8)
    gt[2:6, 4:8, 4:8] = 1
    gt[10:14, 4:8, 4:8] = 1
    pred = np.zeros_like(gt)
    pred[3:13, 5:7, 5:7] = 1  # one bar through both lesions
    pred[24:27, 4:7, 4:7] = 1  # far from any lesion
    return gt, pred


def _split_plus_fp():
    """One GT lesion covered by two separate predicted components, plus one false positive."""
    gt = np.zeros((30, 12, 12), np.uint8)
    gt[2:12, 4:8, 4:8] = 1
    pred = np.zeros_like(gt)
    pred[2:5, 4:8, 4:8] = 1
    pred[8:12, 4:8, 4:8] = 1  # a gap of three slices: two components
    pred[24:27, 4:7, 4:7] = 1
    return gt, pred


# (case, rule) -> (tp, fp, n_predictions, precision, f2), by hand:
#   lesion rule: P = TP / (TP + FP), F2 = 5TP / (5TP + 4FN + FP)
#   prediction rule: P = hitting components / components, F2 = 5PR / (4P + R)
EXPECTED = {
    ("bridging", "lesion"): (2, 1, 2, 2 / 3, 10 / 11),
    ("bridging", "prediction"): (2, 1, 2, 1 / 2, 2.5 / 3),
    ("split", "lesion"): (1, 1, 3, 1 / 2, 5 / 6),
    ("split", "prediction"): (1, 1, 3, 2 / 3, (10 / 3) / (11 / 3)),
}
CASES = {"bridging": _bridging_plus_fp, "split": _split_plus_fp}


@pytest.mark.parametrize("case, rule", list(EXPECTED))
def test_report_and_counts_follow_the_precision_rule(case, rule):
    gt, pred = CASES[case]()
    tp, fp, n_pred, precision, f2 = EXPECTED[(case, rule)]
    p = lesion_report(gt, pred, spacing_mm=(1, 1, 1), precision=rule).patient
    assert (p.tp, p.fp, p.n_predictions) == (tp, fp, n_pred) and p.sensitivity == 1.0
    assert p.precision == pytest.approx(precision, abs=1e-12) and p.f2 == pytest.approx(f2, abs=1e-12)
    counts = lesion_counts_by_threshold(gt, pred.astype(np.float32), spacing_mm=(1, 1, 1), thresholds=[0.5],
                                        precision=rule).iloc[0]
    assert counts["precision"] == pytest.approx(precision, abs=1e-12) and counts["f2"] == pytest.approx(f2, abs=1e-12)


def test_the_rules_move_in_opposite_directions():
    b_les, b_pred = EXPECTED[("bridging", "lesion")][3], EXPECTED[("bridging", "prediction")][3]
    s_les, s_pred = EXPECTED[("split", "lesion")][3], EXPECTED[("split", "prediction")][3]
    assert b_les > b_pred and s_les < s_pred


def test_edge_cases_and_bad_rule():
    empty = np.zeros((8, 8, 8), np.uint8)
    fp_only = empty.copy()
    fp_only[2:4, 2:4, 2:4] = 1
    for rule in ("lesion", "prediction"):
        none = lesion_report(empty, empty, spacing_mm=1, precision=rule).patient
        assert np.isnan(none.precision) and np.isnan(none.f2)  # nothing to count: NaN, dropped from medians
        only_fp = lesion_report(empty, fp_only, spacing_mm=1, precision=rule).patient
        assert only_fp.precision == 0.0 and only_fp.f2 == 0.0  # a patient without lesions but with an FP: F2 = 0
        missed = lesion_report(fp_only, empty, spacing_mm=1, precision=rule).patient
        assert np.isnan(missed.precision) and missed.f2 == 0.0
    with pytest.raises(MetricInputError, match="precision must be one of"):
        lesion_report(empty, empty, spacing_mm=1, precision="voxel")
    with pytest.raises(MetricInputError, match="precision must be one of"):
        lesion_counts_by_threshold(empty, empty.astype(np.float32), spacing_mm=1, thresholds=[0.5], precision="x")


def test_cli_precision_option(tmp_path, capsys):
    gt, pred = _split_plus_fp()
    for name, array in (("gt", gt), ("pred", pred)):
        img = nib.Nifti1Image(array, np.eye(4))
        img.set_qform(np.eye(4), code=1)
        img.set_sform(np.eye(4), code=1)
        nib.save(img, str(tmp_path / f"{name}.nii.gz"))
    results = {}
    for rule in ("lesion", "prediction"):
        out = tmp_path / f"{rule}.json"
        assert main(["evaluate", "--gt", str(tmp_path / "gt.nii.gz"), "--pred", str(tmp_path / "pred.nii.gz"),
                     "--precision", rule, "--json", str(out)]) == 0
        results[rule] = json.loads(out.read_text())
    capsys.readouterr()
    flat = {rule: json.dumps(r) for rule, r in results.items()}
    assert '"precision": 0.5' in flat["lesion"] and '"precision": 0.6666666666666666' in flat["prediction"]
    assert '"precision": "prediction"' in flat["prediction"]  # the rule is reported with the results

"""Degenerate predictions are flagged (one component over several lesions, or body-sized); a tuned
threshold at the edge of its grid warns with the refinement rule."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sapkit.cli import main
from sapkit.errors import ThresholdGridWarning
from sapkit.evaluation.tables import flagged_scans, flags_note
from sapkit.metrics import extended_grid, lesion_report, tune_threshold


def _three_lesions():
    gt = np.zeros((40, 40, 40), np.uint8)
    for c in (5, 18, 31):
        gt[c:c + 4, c:c + 4, c:c + 4] = 1
    return gt


def test_one_component_covering_every_lesion_is_flagged_in_rows_and_summary():
    gt = _three_lesions()
    pred = np.ones_like(gt)  # the 1-epoch "body" prediction: F2 1.0, Dice ~0
    r = lesion_report(gt, pred, spacing_mm=(3.0, 3.0, 3.0))
    assert r.patient.f2 == 1.0 and r.patient.global_dice < 0.01  # what the flags are for
    (row,) = r.prediction_rows
    assert row["merges_lesions"] and row["oversized"]  # 64000 voxels of 27 µL = 1728 mL > 200 mL
    assert (r.patient.n_merging, r.patient.n_oversized, r.patient.flagged) == (1, 1, True)
    assert bool(r.predictions["merges_lesions"].iloc[0]) and r.predictions["oversized"].dtype == bool
    assert r.patient.to_dict()["n_oversized"] == 1


def test_a_good_prediction_is_not_flagged_and_the_bound_is_a_parameter():
    gt = _three_lesions()
    r = lesion_report(gt, gt.copy(), spacing_mm=(3.0, 3.0, 3.0))
    assert not r.patient.flagged and not any(p["merges_lesions"] or p["oversized"] for p in r.prediction_rows)
    # each lesion is 64 voxels × 27 µL = 1.728 mL: above a 1 mL bound, below 2 mL
    assert lesion_report(gt, gt, spacing_mm=3.0, oversize_ml=1.0).patient.n_oversized == 3
    assert lesion_report(gt, gt, spacing_mm=3.0, oversize_ml=2.0).patient.n_oversized == 0
    bridge = gt.copy()
    bridge[5:22, 5:22, 5:22] = 1  # one 132.7 mL block over lesions 1 and 2; lesion 3 predicted alone
    r = lesion_report(gt, bridge, spacing_mm=3.0)
    assert (r.patient.n_predictions, r.patient.n_merging, r.patient.n_oversized) == (2, 1, 0)


def test_cli_json_and_cohort_tables_carry_the_flag(tmp_path):
    gt = _three_lesions()
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(gt, affine), tmp_path / "gt.nii.gz")
    nib.save(nib.Nifti1Image(np.ones_like(gt), affine), tmp_path / "pred.nii.gz")
    out = tmp_path / "case.json"
    assert main(["evaluate", "--gt", str(tmp_path / "gt.nii.gz"), "--pred", str(tmp_path / "pred.nii.gz"),
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["flagged_predictions"] == {"merges_lesions": 1, "oversized": 1, "any": True}
    assert doc["predictions"][0]["oversized"] and doc["predictions"][0]["merges_lesions"]
    patients = pd.DataFrame({"init": ["sap", "sap", "scratch"], "scan_id": ["a", "b", "a"],
                             "n_merging": [1, 0, 0], "n_oversized": [0, 0, 0]})
    assert flagged_scans(patients) == {"scratch": (0, 1), "sap": (1, 2)}
    assert "scratch 0 of 1 scans, sap 1 of 2 scans" in flags_note(patients, 200.0)


def _counts(best: float) -> pd.DataFrame:
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    rows = [{"scan_id": s, "threshold": t, "f2": 1.0 - abs(t - best) + 0.01 * k} for k, s in enumerate("abc") for t in grid]
    return pd.DataFrame(rows)


def test_threshold_at_the_top_of_the_grid_warns_with_the_extended_grid():
    with pytest.warns(ThresholdGridWarning, match=r"0.95 is the upper end .*0.96, 0.97, 0.98, 0.99"):
        choice = tune_threshold(_counts(best=0.99), what="init sap")
    assert choice.threshold == 0.95 and choice.to_dict()["grid_edge"] == "upper"
    with pytest.warns(ThresholdGridWarning, match="lower end"):
        assert tune_threshold(_counts(best=0.01)).threshold == 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an interior optimum says nothing
        assert tune_threshold(_counts(best=0.5)).to_dict()["grid_edge"] is None
    assert extended_grid(np.array([0.1, 0.2, 0.3]), "lower")[:5] == [0.02, 0.04, 0.06, 0.08, 0.1]


def test_sweep_summary_counts_flagged_scans_and_the_plot_marks_them(tmp_path):
    from sapkit.io.run_paths import RunDir
    from sapkit.pipeline.sweep import aggregate_runs
    from sapkit.plotting.figures import label_efficiency_figure

    runs = {}
    for frac, oversized in ((0.5, [1, 1, 0]), (1.0, [0, 0, 0])):
        rd = RunDir(tmp_path / f"f{frac}")
        rd.eval_table("patients").parent.mkdir(parents=True)
        pd.DataFrame({"init": "sap", "scan_id": ["a", "b", "c"], "f2": [1.0, 1.0, 0.9], "dice_mean": [0.0, 0.0, 0.1],
                      "n_merging": 0, "n_oversized": oversized}).to_csv(rd.eval_table("patients"), index=False)
        runs[f"f{frac}"] = ({"lesion.label_fraction": frac}, rd.path)
    summary = aggregate_runs(runs)
    assert summary["flagged_scans"].tolist() == [2, 0]
    fig = label_efficiency_figure(summary)
    assert list(fig.data[0].marker.symbol) == ["x-thin-open", "circle"]  # 2 of 3 scans flagged at fraction 0.5
    assert any("flagged prediction" in a.text for a in fig.layout.annotations)

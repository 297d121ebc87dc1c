"""sapkit.plotting.run_explorer: the explorer over an evaluated run lists every test scan, and its outcomes,
per-case sensitivity and F2 are the evaluation tables' values; a failure-gallery panel opens in the viewer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_run import INITS, write_fake_run  # noqa: E402

from sapkit.config import load_config  # noqa: E402
from sapkit.evaluation.cohort import evaluate_run  # noqa: E402
from sapkit.plotting.colors import OUTCOME_COLORS  # noqa: E402
from sapkit.plotting.run_explorer import explorer_from_run  # noqa: E402


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    run = write_fake_run(tmp_path_factory.mktemp("run") / "run", n_patients=9)
    config = load_config("smoke")
    return run, config, evaluate_run(run, config, progress=False)


def test_every_test_scan_is_listed_and_read_only_when_chosen(evaluated):
    run, config, result = evaluated
    ex = explorer_from_run(run, result, config, viewer_backend="plotly")
    test_scans = set(result.patients["scan_id"])
    assert set(ex.cases) == test_scans and len(ex.cases) == len(test_scans) >= 3
    assert f"<b>{len(test_scans)}</b> test scans" in ex.cases_note.value
    n = result.patients.drop_duplicates("scan_id").set_index("scan_id")["n_lesions"]
    assert [int(n[c]) for c in ex.cases] == sorted((int(n[c]) for c in ex.cases), reverse=True)
    assert len(ex._images._scans._cache) == 1          # only the first scan was read


def test_outcomes_and_per_case_scores_equal_the_evaluation_tables(evaluated):
    run, config, result = evaluated
    ex = explorer_from_run(run, result, config, viewer_backend="plotly")
    patients = result.patients.set_index(["init", "scan_id"])
    preds = result.predictions.set_index(["init", "scan_id", "pred_id"])
    checked_fp = 0
    for init in INITS:
        t = result.thresholds[init].threshold
        for case in ex.cases:
            ex.show(case, init=init, threshold=t)
            assert ex.threshold_slider.value == pytest.approx(t)
            row = patients.loc[(init, case)]
            assert ex.outcomes.sensitivity == pytest.approx(row["sensitivity"], nan_ok=True)
            assert ex.outcomes.f2 == pytest.approx(row["f2"], nan_ok=True)
            assert int(ex.outcomes.report.patient.fp) == int(row["fp"])
            assert len(ex.table) == int(row["n_predictions"])
            for r in ex.table.itertuples():             # each lesion's mark is eval/predictions.csv's
                assert r.false_positive == bool(preds.loc[(init, case, r.pred_id), "false_positive"])
                checked_fp += r.false_positive
    assert checked_fp > 0


def test_a_false_positive_from_the_gallery_opens_in_three_colours(evaluated):
    run, config, result = evaluated
    ex = explorer_from_run(run, result, config, init="sap", viewer_backend="plotly")
    options = dict(ex.gallery_picker.options)
    fp_label = next(label for label in options if label.startswith("false positive 1 · "))
    ex.gallery_picker.value = options[fp_label]
    first_fp = result.predictions[(result.predictions["init"] == "sap") & result.predictions["false_positive"]] \
        .sort_values("max_prob", ascending=False, kind="stable").iloc[0]
    assert ex.case_picker.value == first_fp["scan_id"] and ex.init_picker.value == "sap"
    assert ex.threshold_slider.value == pytest.approx(result.thresholds["sap"].threshold)
    kind, lesion_id = ex.lesion_picker.value
    chosen = ex.table[ex.table["lesion_id"] == lesion_id].iloc[0]
    assert kind == "predicted" and chosen["false_positive"] and chosen["pred_id"] == first_fp["pred_id"]
    colours = {t.name: t.marker.color for t in ex.viewer.data if t.name not in ("image", "reference")}
    assert colours["false positive"] == OUTCOME_COLORS["false_positive"]
    assert set(colours.values()) <= set(OUTCOME_COLORS.values())
    assert "false positive" in ex.viewer_note.value


def test_ipyniivue_outcome_viewer_has_the_legend_and_colours(evaluated):
    ipyniivue = pytest.importorskip("ipyniivue")
    run, config, result = evaluated
    ex = explorer_from_run(run, result, config, init="sap", viewer_backend="ipyniivue")
    fp = next(v for label, v in ex.lesion_picker.options if v and "false positive" in label)
    ex.lesion_picker.value = fp
    legend, nv = ex.viewer.children
    assert isinstance(nv, ipyniivue.NiiVue) and "sapkit-legend" in legend.value
    for name in ("true positive", "false positive", "missed lesion"):
        assert name in legend.value
    for colour in OUTCOME_COLORS.values():
        assert f"background:{colour}" in legend.value
    outcomes = nv.volumes[-1]
    assert outcomes.name == "outcomes.nii.gz"
    lut = np.asarray(outcomes.colormap_label.lut).reshape(-1, 4)    # RGBA per value 0..3
    names = outcomes.colormap_label.labels
    for value in range(1, lut.shape[0]):
        if lut[value, 3]:
            name = names[value]
            key = {"true positive": "true_positive", "false positive": "false_positive", "missed lesion": "missed"}[name]
            assert "#%02x%02x%02x" % tuple(lut[value, :3]) == OUTCOME_COLORS[key]
    assert "false positive" in names

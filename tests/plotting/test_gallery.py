"""sapkit.plotting.gallery: lesion crops with reference (green) and prediction (cyan) outlines, from a run folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.data.manifest import load_manifest
from sapkit.errors import ConfigError
from sapkit.evaluation.cohort import RunEvaluation
from sapkit.io.nifti import save_nifti
from sapkit.io.run_paths import RunDir
from sapkit.metrics import ThresholdChoice
from sapkit.plotting.colors import PREDICTION_COLOR, REFERENCE_COLOR
from sapkit.plotting.gallery import failure_gallery_figure, lesion_gallery_figure

SPACING_MM = (2.0, 2.0, 3.0)   # of the tiny cohort (tests/conftest.py)


@pytest.fixture
def run(tiny_cohort):
    """A run folder around the tiny cohort: a SAP probability map of scan p02_s0 finding its lesion and one FP."""
    rd = RunDir(tiny_cohort.parent.parent)                 # tiny_cohort is <run>/data/manifest.yaml
    manifest = load_manifest(rd.data)
    prob = np.zeros((12, 10, 14), np.float32)
    prob[1:3, 1:3, 1:3] = 0.9          # the reference lesion (2 × 2 × 2 voxels at x, y, z = 1..2)
    prob[8:10, 6:8, 9:12] = 0.8        # a false positive (2 × 2 × 3 voxels)
    save_nifti(prob, np.diag([*SPACING_MM, 1.0]), rd.probability_map("sap", "p02_s0"))
    save_nifti(np.zeros_like(prob), np.diag([*SPACING_MM, 1.0]), rd.probability_map("sap", "p03_s0"))
    lesions = pd.DataFrame({"init": ["sap", "sap"], "scan_id": ["p02_s0", "p03_s0"], "volume_ml": [0.096, 0.096],
                            "detected": [True, False], "centroid_x_vox": [1.5, 1.5], "centroid_y_vox": [1.5, 1.5],
                            "centroid_z_vox": [1.5, 1.5]})
    preds = pd.DataFrame({"init": ["sap", "sap"], "scan_id": ["p02_s0", "p02_s0"], "false_positive": [False, True],
                          "max_prob": [0.9, 0.8], "volume_ml": [0.096, 0.144], "centroid_x_vox": [1.5, 8.5],
                          "centroid_y_vox": [1.5, 6.5], "centroid_z_vox": [1.5, 10.0]})
    choice = ThresholdChoice(0.5, 0.7, "median", pd.DataFrame({"threshold": [0.5], "f2": [0.7], "n_scans": [1]}))
    empty = pd.DataFrame()
    evaluation = RunEvaluation(lesions, preds, empty, empty, {"sap": choice}, {}, empty, empty, empty)
    return rd, manifest, evaluation


def test_gallery_panel_outlines_reference_and_prediction_in_mm(run):
    rd, manifest, evaluation = run
    items = evaluation.lesions.iloc[:1]
    fig = lesion_gallery_figure(items, manifest=manifest, pred_dir=rd.predictions("sap"), threshold=0.5,
                                half_width_vox=3, title="g")
    assert [t.name for t in fig.data] == ["image", "reference", "prediction"]
    image, reference, prediction = fig.data
    assert np.asarray(image.z).shape == (6, 6)               # z 0..5 × x 0..5 around voxel 2 (clipped at 0)
    assert (image.dx, image.dy) == (2.0, 3.0)                # coronal crop: x and z spacing, mm
    assert reference.marker.color == REFERENCE_COLOR and prediction.marker.color == PREDICTION_COLOR
    # the 2 × 2 lesion at x, z = 1..2 is all boundary; the prediction covers it exactly
    assert sorted(zip(np.asarray(reference.x).tolist(), np.asarray(reference.y).tolist())) == \
        [(2.0, 3.0), (2.0, 6.0), (4.0, 3.0), (4.0, 6.0)]
    np.testing.assert_array_equal(np.sort(np.asarray(prediction.x)), np.sort(np.asarray(reference.x)))
    assert [a.text for a in fig.layout.annotations] == ["1. p02_s0 (0.10 mL)"]  # numbered for the explorer
    with pytest.raises(ConfigError, match="gallery items need columns"):
        lesion_gallery_figure(items.drop(columns="centroid_z_vox"), manifest=manifest, pred_dir=rd.predictions("sap"),
                              threshold=0.5)


def test_failure_gallery_selects_false_positives_and_missed_lesions(run):
    rd, _, evaluation = run
    fig = failure_gallery_figure(evaluation, rd.path, init="sap", kind="false_positive", max_items=4)
    assert fig.layout.title.text == "SAP: most confident false positives (1)"
    assert len(fig.data) == 3 and len(fig.data[1].x) == 0     # no reference lesion near the false positive
    assert len(fig.data[2].x) == 2 * 3                        # its 2 × 3 coronal cut, all boundary
    missed = failure_gallery_figure(evaluation, rd.path, init="sap", kind="missed")
    assert missed.layout.title.text == "SAP: largest missed lesions (1 missed)"
    assert [a.text for a in missed.layout.annotations] == ["1. p03_s0 (0.10 mL)"]
    assert len(missed.data[1].x) == 2 * 4 and len(missed.data[2].x) == 0  # p03's two 2×2 lesions, no prediction
    with pytest.raises(ConfigError, match="kind must be one of"):
        failure_gallery_figure(evaluation, rd.path, kind="hits")
    with pytest.raises(ConfigError, match="was not evaluated"):
        failure_gallery_figure(evaluation, rd.path, init="ssl")

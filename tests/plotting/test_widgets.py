"""The thin lesion-explorer widget (its table numbers are tested in tests/inference/test_postprocess.py and
tests/plotting/test_outcomes.py; the explorer over a run in tests/plotting/test_run_explorer.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.errors import ConfigError
from sapkit.inference.postprocess import lesion_components
from sapkit.plotting.colors import OUTCOME_COLORS, PREDICTION_COLOR, REFERENCE_COLOR
from sapkit.plotting.widgets import lesion_explorer


# ----------------------------------------------------------------------------- the widget shell
@pytest.fixture
def explorer_inputs():
    shape = (16, 10, 24)
    image = np.zeros((2, *shape), np.float32)
    image[1, 4:12, 3:7, 2:22] = 1.0
    probs = {}
    for init, level in (("sap", 0.9), ("scratch", 0.4), ("ssl", 0.7)):
        p = np.zeros(shape, np.float32)
        p[5:8, 4:6, 5:9] = level           # 24 voxels
        p[10, 5, 15:17] = 0.3               # 2 voxels, a faint second lesion
        probs[init] = {"p1": p}
    probs["sap"]["p2"] = np.full(shape, 0.1, np.float32)
    reference = np.zeros(shape, bool)
    reference[5:8, 4:6, 5:7] = True         # 12 voxels, all inside the 24-voxel lesion
    return {"p1": image, "p2": image}, probs, {"p1": reference}


def test_explorer_slider_recomputes_table_overlay_and_comparison(explorer_inputs):
    images, probs, masks = explorer_inputs
    ex = lesion_explorer(images, probs, spacing_mm=(2.0, 2.0, 5.0), lesion_masks=masks, threshold=0.5)
    assert ex.inits == ["scratch", "ssl", "sap"]          # INIT_ORDER, not insertion order
    assert ex.init_picker.value == "scratch" and ex.table.empty  # scratch peaks at 0.4 < 0.5
    ex.init_picker.value = "sap"
    assert ex.table["n_voxels"].tolist() == [24]
    assert ex.table["volume_ml"].tolist() == pytest.approx([24 * 20 / 1000])
    assert [t.name for t in ex.figure.data] == ["image", "reference", "true positive", "false positive", "missed lesion"]
    assert ex.figure.data[2].marker.color == PREDICTION_COLOR and ex.figure.data[1].marker.color == REFERENCE_COLOR
    assert [t.marker.color for t in ex.figure.data[3:]] == [OUTCOME_COLORS["false_positive"], OUTCOME_COLORS["missed"]]
    assert ex.figure.layout.legend.itemsizing == "constant" and ex.figure.layout.modebar.orientation == "v"
    assert ex.table["outcome"].tolist() == ["true positive"] and "sensitivity <b>1.000</b>" in ex.summary.value
    # coronal projection of the 24-voxel lesion: x 5..7 × z 5..8, a 3 × 4 block with a 1 × 2 inside
    assert len(ex.figure.data[2].x) == 3 * 4 - 2
    assert set(np.asarray(ex.figure.data[2].x).tolist()) == {10.0, 12.0, 14.0}
    assert "SAP" in ex.figure.layout.title.text
    before = ex.table_html.value
    ex.threshold_slider.value = 0.25
    assert ex.table["n_voxels"].tolist() == [24, 2] and ex.table_html.value != before
    components, table = lesion_components(probs["sap"]["p1"], threshold=0.25, spacing_mm=(2.0, 2.0, 5.0), scan_id="p1")
    pd.testing.assert_frame_equal(ex.table[table.columns], table)
    assert ex.table["outcome"].tolist() == ["true positive", "false positive"]   # the faint lesion hits nothing
    assert len(ex.figure.data[3].x) == 2                                            # … drawn in orange
    np.testing.assert_array_equal(ex.component_map, components)
    assert "<b>2</b> lesions" in ex.summary.value
    comparison = ex.comparison_table
    assert "<table" in ex.comparison.value
    assert comparison["init"].tolist() == ["scratch", "ssl", "sap"]
    assert comparison["n_lesions"].tolist() == [2, 2, 2]
    assert comparison["dice"].tolist() == pytest.approx([2 * 12 / (26 + 12)] * 3, abs=1e-3)
    assert comparison["sensitivity"].tolist() == [1.0] * 3 and comparison["false_positives"].tolist() == [1] * 3
    assert comparison["f2"].tolist() == pytest.approx([5 * 0.5 / (4 * 0.5 + 1)] * 3)  # precision 1/2, recall 1
    assert len(ex.figure.data[2].x) == 3 * 4 - 2                                   # true positive only
    # the reference outline is drawn in mm: x in {5, 6, 7} × 2 mm, z in {5, 6} × 5 mm
    assert set(np.asarray(ex.figure.data[1].x).tolist()) == {10.0, 12.0, 14.0}
    assert set(np.asarray(ex.figure.data[1].y).tolist()) == {25.0, 30.0}


def test_explorer_case_switch_limits_inits(explorer_inputs):
    images, probs, masks = explorer_inputs
    ex = lesion_explorer(images, probs, spacing_mm={"p1": (2.0, 2.0, 5.0), "p2": (1.0, 1.0, 1.0)})
    ex.case_picker.value = "p2"
    assert list(ex.init_picker.options) == ["sap"] and ex.init_picker.value == "sap"
    assert ex.table.empty and "<b>0</b> lesions" in ex.summary.value
    assert len(ex.figure.data[1].x) == 0 and len(ex.figure.data[2].x) == 0  # no reference, no lesion for p2


def test_explorer_rejects_unmatched_ids(explorer_inputs):
    images, probs, _ = explorer_inputs
    with pytest.raises(ConfigError, match="no scan has both"):
        lesion_explorer({"other": images["p1"]}, probs, spacing_mm=1.0)
    with pytest.raises(ConfigError, match="init 'mae' has no probability maps"):
        lesion_explorer(images, probs, spacing_mm=1.0, init="mae")
    assert lesion_explorer(images, probs, spacing_mm=1.0, init="ssl").init_picker.value == "ssl"


def test_lesion_picker_marks_outcomes_and_opens_the_viewer(explorer_inputs):
    images, probs, masks = explorer_inputs
    ex = lesion_explorer(images, probs, spacing_mm=(2.0, 2.0, 5.0), lesion_masks=masks, threshold=0.25, init="sap",
                         viewer_backend="plotly")
    labels = [label for label, _ in ex.lesion_picker.options]
    assert labels[1].startswith("lesion 1 · true positive") and labels[2].startswith("lesion 2 · false positive")
    ex.lesion_picker.value = ("predicted", 2)                   # choosing a lesion opens it
    names = [t.name for t in ex.viewer.data]
    assert {"true positive", "false positive"} <= set(names) and "false positive 2" in ex.viewer.layout.title.text
    colors = {t.name: t.marker.color for t in ex.viewer.data if t.name in ("true positive", "false positive")}
    assert colors == {"true positive": OUTCOME_COLORS["true_positive"], "false positive": OUTCOME_COLORS["false_positive"]}
    assert "voxel (10, 5, 16)" in ex.viewer_note.value          # the faint lesion's centroid: x 10, y 5, z 15.5 → 16
    ex.threshold_slider.value = 0.95                             # nothing predicted: the reference lesion is missed
    assert ex.table.empty and [label for label, _ in ex.lesion_picker.options][1].startswith("reference lesion 1 · missed")

"""Lesion tables at a threshold (hand-computed numbers) and the thin explorer widget around them."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import MetricInputError
from sapkit.figures import INIT_COLORS
from sapkit.widgets import LESION_TABLE_COLUMNS, lesion_explorer, lesion_table_at_threshold, threshold_lesions


def _two_blobs() -> np.ndarray:
    """A 2×2×2 cube (prob 0.9, one corner 0.95) and a 1×1×3 rod (prob 0.6) in a 10×8×6 grid."""
    prob = np.zeros((10, 8, 6), np.float32)
    prob[1:3, 1:3, 1:3] = 0.9
    prob[2, 2, 2] = 0.95
    prob[7, 5, 1:4] = 0.6
    return prob


def test_anisotropic_hand_computed_table():
    table = lesion_table_at_threshold(_two_blobs(), 0.5, spacing_mm=(1.0, 2.0, 3.0))
    assert list(table.columns) == list(LESION_TABLE_COLUMNS)
    assert table["lesion_id"].tolist() == [1, 2]
    assert table["n_voxels"].tolist() == [8, 3]
    np.testing.assert_allclose(table["volume_ml"], [8 * 6 / 1000, 3 * 6 / 1000])
    np.testing.assert_allclose(table["max_prob"], [0.95, 0.6], rtol=1e-6)
    np.testing.assert_allclose(table["mean_prob"], [(7 * 0.9 + 0.95) / 8, 0.6], rtol=1e-6)
    # cube centre at voxel (1.5, 1.5, 1.5), rod at (7, 5, 2); × spacing
    np.testing.assert_allclose(table[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(),
                               [[1.5, 3.0, 4.5], [7.0, 10.0, 6.0]])


def test_threshold_is_inclusive_and_splits_by_probability():
    prob = _two_blobs()
    assert lesion_table_at_threshold(prob, 0.6, spacing_mm=1.0)["n_voxels"].tolist() == [8, 3]
    assert lesion_table_at_threshold(prob, 0.61, spacing_mm=1.0)["n_voxels"].tolist() == [8]
    assert lesion_table_at_threshold(prob, 0.95, spacing_mm=1.0)["n_voxels"].tolist() == [1]


@pytest.mark.parametrize(("connectivity", "n_lesions"), [(26, 1), (18, 2), (6, 3)])
def test_connectivity(connectivity, n_lesions):
    prob = np.zeros((3, 3, 3))
    prob[0, 0, 0] = prob[1, 1, 1] = 1.0  # corner neighbours: joined only by 26-connectivity
    prob[2, 2, 1] = 1.0                  # edge neighbour of (1, 1, 1): joined by 18 and 26
    table = lesion_table_at_threshold(prob, 0.5, spacing_mm=1.0, connectivity=connectivity)
    assert len(table) == n_lesions


def test_component_map_matches_table_and_largest_first():
    prob = np.zeros((12, 12, 12))
    prob[0, 0, 0] = 0.7                # 1 voxel, first in raster order
    prob[5:8, 5:8, 5:8] = 0.8          # 27 voxels
    prob[10:12, 0:2, 0:2] = 0.9        # 8 voxels
    components, table = threshold_lesions(prob, 0.5, spacing_mm=(2.0, 2.0, 2.0))
    assert components.dtype == np.int32
    assert table["n_voxels"].tolist() == [27, 8, 1]
    for row in table.itertuples():
        assert int((components == row.lesion_id).sum()) == row.n_voxels
    assert components[6, 6, 6] == 1 and components[11, 1, 1] == 2 and components[0, 0, 0] == 3


def test_min_volume_drops_and_relabels():
    prob = np.zeros((12, 12, 12))
    prob[0, 0, 0] = 0.7
    prob[5:8, 5:8, 5:8] = 0.8
    prob[10:12, 0:2, 0:2] = 0.9
    components, table = threshold_lesions(prob, 0.5, spacing_mm=(2.0, 2.0, 2.0), min_volume_ml=8 * 8 / 1000)
    assert table["lesion_id"].tolist() == [1, 2]
    assert table["volume_ml"].tolist() == pytest.approx([27 * 8 / 1000, 8 * 8 / 1000])
    assert components[0, 0, 0] == 0 and set(np.unique(components)) == {0, 1, 2}


def test_empty_table_has_all_columns():
    components, table = threshold_lesions(np.full((4, 5, 6), 0.2, np.float32), 0.5, spacing_mm=1.0)
    assert table.empty and list(table.columns) == list(LESION_TABLE_COLUMNS)
    assert table["n_voxels"].dtype == np.int64 and table["volume_ml"].dtype == np.float64
    assert components.shape == (4, 5, 6) and not components.any()
    # everything filtered by min_volume_ml is empty too
    assert lesion_table_at_threshold(_two_blobs(), 0.5, spacing_mm=1.0, min_volume_ml=1.0).empty


def test_raising_the_threshold_never_grows_the_lesion_volume():
    rng = np.random.default_rng(3)
    prob = rng.random((20, 16, 12))
    volumes = [lesion_table_at_threshold(prob, t, spacing_mm=(1.5, 1.5, 4.0))["volume_ml"].sum()
               for t in np.linspace(0.05, 0.95, 10)]
    assert all(a >= b for a, b in zip(volumes, volumes[1:]))
    assert volumes[0] == pytest.approx((prob >= 0.05).sum() * 9.0 / 1000)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"prob_map": np.zeros((3, 3))}, r"must be \(X, Y, Z\)"),
    ({"prob_map": np.zeros((3, 3, 3), np.uint8)}, "float probabilities"),
    ({"prob_map": np.full((3, 3, 3), 1.5)}, r"in \[0, 1\]"),
    ({"prob_map": np.full((3, 3, 3), np.nan)}, "27 NaN/inf voxels"),
    ({"threshold": 0.0}, r"threshold must be in \(0, 1\]"),
    ({"spacing_mm": (1.0, -1.0, 1.0)}, "3 positive numbers"),
    ({"connectivity": 8}, "6, 18 or 26"),
    ({"min_volume_ml": -1.0}, "min_volume_ml"),
])
def test_bad_inputs_raise(kwargs, match):
    args = {"prob_map": np.zeros((3, 3, 3)), "threshold": 0.5, "spacing_mm": 1.0, **kwargs}
    with pytest.raises(MetricInputError, match=match):
        lesion_table_at_threshold(args.pop("prob_map"), args.pop("threshold"), **args)


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
    assert ex.figure.data[1].colorscale[-1][1] == INIT_COLORS["sap"]
    assert int(np.asarray(ex.figure.data[1].z).sum()) == 3 * 4  # coronal projection: 3 x × 4 z
    before = ex.table_html.value
    ex.threshold_slider.value = 0.25
    assert ex.table["n_voxels"].tolist() == [24, 2] and ex.table_html.value != before
    assert "<b>2</b> lesions" in ex.summary.value
    comparison = ex.comparison_table
    assert "<table" in ex.comparison.value
    assert comparison["init"].tolist() == ["scratch", "ssl", "sap"]
    assert comparison["n_lesions"].tolist() == [2, 2, 2]
    assert comparison["dice"].tolist() == pytest.approx([2 * 12 / (26 + 12)] * 3, abs=1e-3)
    # the reference outline is drawn in mm: x in {5, 6, 7} × 2 mm, z in {5, 6} × 5 mm
    assert set(np.asarray(ex.figure.data[2].x).tolist()) == {10.0, 12.0, 14.0}
    assert set(np.asarray(ex.figure.data[2].y).tolist()) == {25.0, 30.0}


def test_explorer_case_switch_limits_inits(explorer_inputs):
    images, probs, masks = explorer_inputs
    ex = lesion_explorer(images, probs, spacing_mm={"p1": (2.0, 2.0, 5.0), "p2": (1.0, 1.0, 1.0)})
    ex.case_picker.value = "p2"
    assert list(ex.init_picker.options) == ["sap"] and ex.init_picker.value == "sap"
    assert ex.table.empty and "<b>0</b> lesions" in ex.summary.value
    assert len(ex.figure.data[2].x) == 0  # no reference for p2


def test_explorer_rejects_unmatched_ids(explorer_inputs):
    images, probs, _ = explorer_inputs
    with pytest.raises(MetricInputError, match="no scan has both"):
        lesion_explorer({"other": images["p1"]}, probs, spacing_mm=1.0)
    with pytest.raises(MetricInputError, match="init 'mae' has no probability maps"):
        lesion_explorer(images, probs, spacing_mm=1.0, init="mae")
    assert lesion_explorer(images, probs, spacing_mm=1.0, init="ssl").init_picker.value == "ssl"

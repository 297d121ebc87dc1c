"""Tests of sapkit.inference.postprocess: probability map → lesion components + table (hand-computed numbers).

The cases were the tests of ``sapkit.plotting.widgets.threshold_lesions`` and ``sapkit.inference.sliding_window.lesion_table``
before the two were merged into :func:`lesion_components`; their numbers are unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.errors import ConfigError, MetricInputError, SapkitError
from sapkit.inference.postprocess import LESION_COLUMNS, lesion_components


def _table(prob, threshold, **kwargs) -> pd.DataFrame:
    return lesion_components(prob, threshold=threshold, **kwargs)[1]


def _two_blobs() -> np.ndarray:
    """A 2×2×2 cube (prob 0.9, one corner 0.95) and a 1×1×3 rod (prob 0.6) in a 10×8×6 grid."""
    prob = np.zeros((10, 8, 6), np.float32)
    prob[1:3, 1:3, 1:3] = 0.9
    prob[2, 2, 2] = 0.95
    prob[7, 5, 1:4] = 0.6
    return prob


def test_anisotropic_hand_computed_table():
    table = _table(_two_blobs(), 0.5, spacing_mm=(1.0, 2.0, 3.0), scan_id="p7")
    assert list(table.columns) == list(LESION_COLUMNS)
    assert table["scan_id"].tolist() == ["p7", "p7"] and table["bone_region"].tolist() == ["", ""]
    assert table["lesion_id"].tolist() == [1, 2]
    assert table["n_voxels"].tolist() == [8, 3]
    np.testing.assert_allclose(table["volume_ml"], [8 * 6 / 1000, 3 * 6 / 1000])
    np.testing.assert_allclose(table["max_prob"], [0.95, 0.6], rtol=1e-6)
    np.testing.assert_allclose(table["mean_prob"], [(7 * 0.9 + 0.95) / 8, 0.6], rtol=1e-6)
    # cube centre at voxel (1.5, 1.5, 1.5), rod at (7, 5, 2); in mm × spacing
    np.testing.assert_allclose(table[["centroid_x_vox", "centroid_y_vox", "centroid_z_vox"]].to_numpy(),
                               [[1.5, 1.5, 1.5], [7.0, 5.0, 2.0]])
    np.testing.assert_allclose(table[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(),
                               [[1.5, 3.0, 4.5], [7.0, 10.0, 6.0]])


def test_volumes_bone_regions_and_min_volume():
    prob = np.zeros((20, 20, 10), np.float32)
    prob[2:4, 2:4, 2:4] = 0.9          # 8 voxels, no bone under it
    prob[10:15, 10:14, 5:7] = 0.6      # 40 voxels, max 0.8 below
    prob[12, 12, 6] = 0.8
    prob[18, 18, 8] = 0.4              # below threshold
    skeleton = np.zeros(prob.shape, np.int16)
    skeleton[10:15, 10:12, 5:7] = 5     # pelvis under half the second lesion (20 voxels)
    skeleton[10:15, 12:14, 5:6] = 2     # thoracic spine under 10 voxels
    spacing = (2.0, 1.5, 4.0)           # 12 mm^3 = 0.012 mL per voxel
    components, table = lesion_components(prob, threshold=0.5, spacing_mm=spacing, skeleton=skeleton, scan_id="p1")
    assert table["n_voxels"].tolist() == [40, 8]   # largest first
    np.testing.assert_allclose(table["volume_ml"], [0.48, 0.096])
    assert table["max_prob"].tolist() == pytest.approx([0.8, 0.9])
    assert table["bone_region"].tolist() == ["pelvis", "none"]
    assert components.dtype == np.int32 and (components > 0).sum() == 48
    assert components[12, 12, 6] == 1 and components[2, 2, 2] == 2
    components, table = lesion_components(prob, threshold=0.5, spacing_mm=spacing, min_volume_ml=0.1)
    assert table["n_voxels"].tolist() == [40] and (components > 0).sum() == 40
    assert table["bone_region"].tolist() == [""]


def test_bone_region_ties_go_to_the_lower_class_and_unknown_names():
    prob = np.zeros((4, 4, 4))
    prob[0, 0, 0:4] = 0.9
    skeleton = np.zeros(prob.shape, np.int16)
    skeleton[0, 0, 0:2] = [4, 3]       # one voxel each: tie → class 3
    assert _table(prob, 0.5, spacing_mm=1.0, skeleton=skeleton)["bone_region"].tolist() == ["lumbar spine"]
    skeleton[0, 0, 0:2] = 42
    assert _table(prob, 0.5, spacing_mm=1.0, skeleton=skeleton)["bone_region"].tolist() == ["unknown"]
    names = {42: "rib"}
    assert _table(prob, 0.5, spacing_mm=1.0, skeleton=skeleton, class_names=names)["bone_region"].tolist() == ["rib"]


def test_threshold_is_inclusive_and_splits_by_probability():
    prob = _two_blobs()
    assert _table(prob, 0.6, spacing_mm=1.0)["n_voxels"].tolist() == [8, 3]
    assert _table(prob, 0.61, spacing_mm=1.0)["n_voxels"].tolist() == [8]
    assert _table(prob, 0.95, spacing_mm=1.0)["n_voxels"].tolist() == [1]


@pytest.mark.parametrize(("connectivity", "n_lesions"), [(26, 1), (18, 2), (6, 3)])
def test_connectivity(connectivity, n_lesions):
    prob = np.zeros((3, 3, 3))
    prob[0, 0, 0] = prob[1, 1, 1] = 1.0  # corner neighbours: joined only by 26-connectivity
    prob[2, 2, 1] = 1.0                  # edge neighbour of (1, 1, 1): joined by 18 and 26
    assert len(_table(prob, 0.5, spacing_mm=1.0, connectivity=connectivity)) == n_lesions


def test_component_map_matches_table_and_largest_first():
    prob = np.zeros((12, 12, 12))
    prob[0, 0, 0] = 0.7                # 1 voxel, first in raster order
    prob[5:8, 5:8, 5:8] = 0.8          # 27 voxels
    prob[10:12, 0:2, 0:2] = 0.9        # 8 voxels
    components, table = lesion_components(prob, threshold=0.5, spacing_mm=(2.0, 2.0, 2.0))
    assert components.dtype == np.int32
    assert table["n_voxels"].tolist() == [27, 8, 1]
    for row in table.itertuples():
        assert int((components == row.lesion_id).sum()) == row.n_voxels
    assert components[6, 6, 6] == 1 and components[11, 1, 1] == 2 and components[0, 0, 0] == 3


def test_equal_volumes_keep_raster_order():
    prob = np.zeros((6, 6, 6))
    prob[4, 4, 4] = prob[0, 0, 0] = prob[2, 2, 2] = 0.9
    components, table = lesion_components(prob, threshold=0.5, spacing_mm=1.0)
    assert table["centroid_x_vox"].tolist() == [0.0, 2.0, 4.0]
    assert components[0, 0, 0] == 1 and components[4, 4, 4] == 3


def test_min_volume_drops_and_relabels():
    prob = np.zeros((12, 12, 12))
    prob[0, 0, 0] = 0.7
    prob[5:8, 5:8, 5:8] = 0.8
    prob[10:12, 0:2, 0:2] = 0.9
    components, table = lesion_components(prob, threshold=0.5, spacing_mm=(2.0, 2.0, 2.0), min_volume_ml=8 * 8 / 1000)
    assert table["lesion_id"].tolist() == [1, 2]
    assert table["volume_ml"].tolist() == pytest.approx([27 * 8 / 1000, 8 * 8 / 1000])
    assert components[0, 0, 0] == 0 and set(np.unique(components)) == {0, 1, 2}


def test_empty_table_has_all_columns():
    components, table = lesion_components(np.full((4, 5, 6), 0.2, np.float32), threshold=0.5, spacing_mm=1.0)
    assert table.empty and list(table.columns) == list(LESION_COLUMNS)
    assert table["n_voxels"].dtype == np.int64 and table["volume_ml"].dtype == np.float64
    assert components.shape == (4, 5, 6) and not components.any()
    # everything filtered by min_volume_ml is empty too
    components, table = lesion_components(_two_blobs(), threshold=0.5, spacing_mm=1.0, min_volume_ml=1.0)
    assert table.empty and list(table.columns) == list(LESION_COLUMNS) and not components.any()


def test_raising_the_threshold_never_grows_the_lesion_volume():
    rng = np.random.default_rng(3)
    prob = rng.random((20, 16, 12))
    volumes = [_table(prob, t, spacing_mm=(1.5, 1.5, 4.0))["volume_ml"].sum() for t in np.linspace(0.05, 0.95, 10)]
    assert all(a >= b for a, b in zip(volumes, volumes[1:]))
    assert volumes[0] == pytest.approx((prob >= 0.05).sum() * 9.0 / 1000)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"prob_map": np.zeros((3, 3))}, SapkitError, r"must be 3D \(X, Y, Z\)"),
    ({"prob_map": np.zeros((3, 3, 3), np.uint8)}, SapkitError, "float probabilities"),
    ({"prob_map": np.full((3, 3, 3), 1.5)}, SapkitError, r"in \[0, 1\]"),
    ({"prob_map": np.full((3, 3, 3), np.nan)}, SapkitError, "27 NaN/inf voxels"),
    ({"threshold": 0.0}, ConfigError, r"threshold must be in \(0, 1\]"),
    ({"spacing_mm": (1.0, -1.0, 1.0)}, ConfigError, "3 positive numbers"),
    ({"connectivity": 8}, ConfigError, r"one of \(6, 18, 26\)"),
    ({"min_volume_ml": -1.0}, ConfigError, "min_volume_ml"),
    ({"skeleton": np.zeros((3, 3, 4), np.int16)}, SapkitError, r"skeleton shape \(3, 3, 4\) ≠ prob_map shape"),
])
def test_bad_inputs_raise(kwargs, error, match):
    """Inference raises sapkit's input errors, never the metrics' MetricInputError."""
    args = {"prob_map": np.zeros((3, 3, 3)), "threshold": 0.5, "spacing_mm": 1.0, **kwargs}
    with pytest.raises(error, match=match) as raised:
        lesion_components(args.pop("prob_map"), **args)
    assert not isinstance(raised.value, MetricInputError)

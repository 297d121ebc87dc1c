"""sapkit.imaging.components: labels equal to scipy's, the documented label order, statistics, dust."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sapkit.errors import ConfigError, SapkitError
from sapkit.imaging.components import component_stats, label_components, remove_small_components

_STRUCTURE_RANK = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}


def _scipy_labels(mask: np.ndarray, connectivity: int, order: str) -> tuple[np.ndarray, int]:
    """scipy.ndimage.label numbers components in C raster order; F order = C order of the transposed mask."""
    structure = ndimage.generate_binary_structure(mask.ndim, _STRUCTURE_RANK[connectivity])
    if order == "C":
        return ndimage.label(mask, structure=structure)
    labels, n = ndimage.label(mask.T, structure=structure)
    return labels.T, n


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_labels_equal_scipy_in_the_documented_order_3d(connectivity, order, layout):
    rng = np.random.default_rng(connectivity)
    for density in (0.05, 0.2, 0.35):
        mask = rng.random((23, 19, 17)) < density
        mask = np.asfortranarray(mask) if layout == "F" else np.ascontiguousarray(mask)
        labels, n = label_components(mask, connectivity=connectivity, order=order)
        expected, n_expected = _scipy_labels(mask, connectivity, order)
        assert n == n_expected > 1
        np.testing.assert_array_equal(labels, expected)  # same partition AND same numbering
        assert labels.flags.c_contiguous if order == "C" else labels.flags.f_contiguous


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("order", ["C", "F"])
def test_labels_equal_scipy_2d(connectivity, order):
    mask = np.random.default_rng(7).random((40, 37)) < 0.3
    labels, n = label_components(mask, connectivity=connectivity, order=order)
    expected, n_expected = _scipy_labels(mask, connectivity, order)
    assert n == n_expected
    np.testing.assert_array_equal(labels, expected)


def test_label_order_on_a_hand_made_mask():
    m = np.zeros((3, 3, 3), np.uint8)
    m[0, 0, 2] = 1  # first in C order (last axis fastest)
    m[2, 0, 0] = 1  # first in F order (first axis fastest)
    m[1, 2, 1] = 1
    c, n = label_components(m, connectivity=6)
    f, _ = label_components(m, connectivity=6, order="F")
    assert n == 3
    assert (c[0, 0, 2], c[1, 2, 1], c[2, 0, 0]) == (1, 2, 3)  # C raster index 9x + 3y + z: 2, 16, 18
    assert (f[2, 0, 0], f[1, 2, 1], f[0, 0, 2]) == (1, 2, 3)  # F raster index x + 3y + 9z: 2, 16, 18


def test_connectivity_joins_faces_edges_corners():
    m = np.zeros((2, 2, 2), bool)
    m[0, 0, 0] = m[1, 1, 1] = True  # corner neighbours
    assert label_components(m, connectivity=26)[1] == 1
    assert label_components(m, connectivity=18)[1] == 2
    m[1, 1, 1], m[1, 1, 0] = False, True  # edge neighbours
    assert label_components(m, connectivity=18)[1] == 1
    assert label_components(m, connectivity=6)[1] == 2


def test_foreground_is_above_zero_and_values_are_not_split():
    lab = np.array([[[0, 3, 5, 0, -2, 1]]], np.int16)  # 3 and 5 touch: one piece; -2 is background
    labels, n = label_components(lab, connectivity=6)
    assert n == 2
    assert labels.tolist() == [[[0, 1, 1, 0, 0, 2]]]
    u = np.array([[[0, 2, 7, 0, 1]]], np.uint8)  # multi-valued unsigned: one foreground too
    assert label_components(u, connectivity=6)[1] == 2


def test_refusals():
    with pytest.raises(SapkitError, match="bool or integer"):
        label_components(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ConfigError, match=r"one of \(6, 18, 26\)"):
        label_components(np.zeros((3, 3, 3), bool), connectivity=8)
    with pytest.raises(ConfigError, match=r"one of \(4, 8\)"):
        label_components(np.zeros((3, 3), bool), connectivity=26)
    with pytest.raises(ConfigError, match="order"):
        label_components(np.zeros((3, 3, 3), bool), order="K")
    with pytest.raises(SapkitError, match="2D or 3D"):
        label_components(np.zeros(5, bool))


def test_empty_mask():
    labels, n = label_components(np.zeros((4, 5, 6), bool))
    assert n == 0 and labels.shape == (4, 5, 6) and not labels.any()


def test_component_stats_match_numpy():
    mask = np.random.default_rng(3).random((20, 18, 16)) < 0.25
    labels, n = label_components(mask, connectivity=26)
    stats = component_stats(labels)
    assert stats.voxel_counts.tolist() == np.bincount(labels.ravel(), minlength=n + 1).tolist()
    for k in (1, n // 2, n):
        idx = np.argwhere(labels == k)
        np.testing.assert_array_equal(stats.bounding_boxes[k], np.stack([idx.min(0), idx.max(0)], axis=1))
        np.testing.assert_allclose(stats.centroids[k], idx.mean(axis=0), rtol=0, atol=1e-12)
        assert stats.slices(k) == tuple(slice(int(a), int(b) + 1) for a, b in zip(idx.min(0), idx.max(0)))


@pytest.mark.parametrize("connectivity", [6, 26])
def test_remove_small_components_keeps_exactly_the_large_ones(connectivity):
    mask = np.random.default_rng(11).random((25, 24, 23)) < 0.2
    labels, _ = label_components(mask, connectivity=connectivity)
    sizes = np.bincount(labels.ravel())
    kept = remove_small_components(mask, 4, connectivity=connectivity)
    expected = (sizes >= 4)[labels] & (labels > 0)
    assert kept.dtype == bool
    np.testing.assert_array_equal(kept, expected)
    np.testing.assert_array_equal(remove_small_components(mask, 1), mask)

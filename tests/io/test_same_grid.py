"""The same-grid check compares world positions of the grid corners, not affine entries."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import NiftiError
from sapkit.io.nifti import GRID_TOLERANCE_VOXELS, check_same_grid, grid_corners_mm


def test_corners_are_the_outer_voxel_edges():
    corners = grid_corners_mm((10, 20, 30), np.diag([2.0, 3.0, 4.0, 1.0]))
    assert corners.min(axis=0).tolist() == [-1.0, -1.5, -2.0]
    assert corners.max(axis=0).tolist() == [19.0, 58.5, 118.0]


def test_a_slightly_different_slice_spacing_is_refused_over_a_long_scan():
    a, b = np.diag([2.0, 2.0, 2.5, 1.0]), np.diag([2.0, 2.0, 2.5009, 1.0])  # entries within 1e-3
    with pytest.raises(NiftiError, match=r"up to 0.68\d* mm .*tolerance 0.02 mm"):
        check_same_grid((100, 100, 760), a, (100, 100, 760), b, name_a="T1", name_b="b1000")
    check_same_grid((100, 100, 4), a, (100, 100, 4), b, name_a="T1", name_b="b1000")  # 4 slices: 3.6 µm apart


def test_float32_rounding_and_a_tenth_of_the_tolerance_pass():
    a = np.array([[-1.5, 0, 0, 300.2], [0, 1.5, 0, -250.7], [0, 0, 5.0, -900.3], [0, 0, 0, 1]])
    check_same_grid((320, 240, 180), a, (320, 240, 180), a.astype(np.float32), name_a="a", name_b="b")
    shifted = a.copy()
    shifted[:3, 3] += 0.1 * GRID_TOLERANCE_VOXELS * 1.5
    check_same_grid((320, 240, 180), a, (320, 240, 180), shifted, name_a="a", name_b="b")
    shifted[:3, 3] += GRID_TOLERANCE_VOXELS * 1.5  # now beyond 1 % of the 1.5 mm voxel
    with pytest.raises(NiftiError, match="resample/reorient b onto the a grid"):
        check_same_grid((320, 240, 180), a, (320, 240, 180), shifted, name_a="a", name_b="b")

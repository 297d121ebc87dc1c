"""sapkit.metrics._surface_area: marching-cubes area per neighbour code — hand-computed corners and MONAI's table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sapkit.metrics import surface_area_table


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 3.0)])
def test_single_corner_is_one_triangle_hand_computed(spacing):
    """One foreground corner: the triangle through the midpoints of its 3 edges, in mm²."""
    sx, sy, sz = spacing
    expected = math.sqrt((sy * sz) ** 2 + (sx * sz) ** 2 + (sx * sy) ** 2) / 8
    table = surface_area_table(spacing)
    for bit in range(8):
        assert table[1 << bit] == pytest.approx(expected)  # every corner alone
        assert table[255 - (1 << bit)] == pytest.approx(expected)  # complement: same surface
    assert table[0] == 0.0 and table[255] == 0.0


def test_half_cube_is_a_plane_and_2d_lengths():
    sp = (2.0, 0.5, 3.0)
    table = surface_area_table(sp)
    # corners with x == 0 (bits 0-3 in itertools.product order): the plane x = 0.5 voxel, area sy × sz
    assert table[0b00001111] == pytest.approx(sp[1] * sp[2])
    length = surface_area_table((2.0, 0.5))
    assert length[1] == pytest.approx(math.hypot(1.0, 0.25))  # segment between two edge midpoints
    assert length[0b0011] == pytest.approx(0.5)  # the line x = 0.5 voxel across the square, sy mm


def test_surface_table_matches_monai_deepmind_table():
    from monai.metrics.utils import get_code_to_measure_table

    for spacing in [(1.0, 1.0, 1.0), (3.0, 2.0, 1.0), (0.8, 1.3, 4.0)]:
        ours = surface_area_table(spacing)
        theirs = np.asarray(get_code_to_measure_table(spacing)[0], dtype=np.float64)
        # MONAI's kernel gives corner (0,0,0) the highest bit: reverse the 8 bits
        rev = [int(format(c, "08b")[::-1], 2) for c in range(256)]
        np.testing.assert_allclose(ours, theirs[rev], rtol=1e-6, atol=1e-6)

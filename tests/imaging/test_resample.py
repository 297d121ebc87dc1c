"""sapkit.imaging.resample: identities, round trips, the field-of-view rule, the target grid."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import ConfigError
from sapkit.imaging.resample import resample, target_grid
from sapkit.io.nifti import reorient_to_ras

LPS = np.array([[-2.0, 0, 0, 30], [0, -2.0, 0, 20], [0, 0, 3.0, -10], [0, 0, 0, 1]])
SHAPE = (8, 6, 5)


def _world(affine, shape):
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:]).reshape(3, *shape)


def test_same_grid_is_the_identity_and_a_shift_moves_by_one_voxel():
    rng = np.random.default_rng(2)
    image = rng.normal(size=(5, 4, 3)).astype(np.float32)
    labels = rng.integers(0, 10, (5, 4, 3)).astype(np.int16)
    np.testing.assert_allclose(resample(image, LPS, image.shape, LPS), image, atol=1e-6)
    same = resample(labels, LPS, labels.shape, LPS, nearest=True)
    assert same.dtype == np.int16
    np.testing.assert_array_equal(same, labels)
    # one voxel shift along x: nearest neighbour copies the neighbour; a whole voxel outside the source is 0
    shifted = LPS @ np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    moved = resample(labels, LPS, labels.shape, shifted, nearest=True)
    np.testing.assert_array_equal(moved[:-1], labels[1:])
    assert not moved[-1].any()


def test_resampling_onto_the_ras_grid_equals_the_voxel_permutation():
    image = np.random.default_rng(4).normal(size=SHAPE).astype(np.float32)
    ras, ras_affine = reorient_to_ras(image, LPS)
    np.testing.assert_allclose(resample(image, LPS, ras.shape, ras_affine), ras, atol=1e-5)
    labels = (image > 0).astype(np.uint8)
    np.testing.assert_array_equal(resample(labels, LPS, ras.shape, ras_affine, nearest=True), reorient_to_ras(labels, LPS)[0])


def test_linear_interpolation_reproduces_a_ramp():
    ramp = 5.0 + np.tensordot([0.5, 0.25, -0.1], _world(LPS, SHAPE), 1)  # linear in world mm
    shape, fine = target_grid(SHAPE, LPS, (1.3, 0.7, 2.1))
    inner = (np.linalg.inv(LPS) @ np.r_[_world(fine, shape).reshape(3, -1), np.ones((1, np.prod(shape)))])[:3]
    inside = ((inner >= 0) & (inner <= np.array(SHAPE)[:, None] - 1)).all(axis=0).reshape(shape)
    out = resample(ramp.astype(np.float32), LPS, shape, fine)
    expected = 5.0 + np.tensordot([0.5, 0.25, -0.1], _world(fine, shape), 1)
    assert inside.sum() > 0.5 * inside.size
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-4)


def test_round_trip_by_an_odd_factor_is_exact():
    """3× finer and back: the coarse centres fall on fine centres, so labels and images come back."""
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 6, SHAPE).astype(np.int16)
    image = rng.normal(size=SHAPE).astype(np.float32)
    shape, fine = target_grid(SHAPE, LPS, (2 / 3, 2 / 3, 1.0))
    assert shape == tuple(3 * s for s in SHAPE)
    up = resample(labels, LPS, shape, fine, nearest=True)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(np.repeat(labels, 3, 0), 3, 1), 3, 2))
    np.testing.assert_array_equal(resample(up, fine, SHAPE, LPS, nearest=True), labels)
    back = resample(resample(image, LPS, shape, fine), fine, SHAPE, LPS)
    np.testing.assert_allclose(back, image, atol=1e-5)


def test_the_field_of_view_reaches_half_a_voxel_beyond_the_outer_centres():
    """Upsampling 2 → 1 mm: the outer output centres lie a quarter voxel outside the outer input centres,
    still inside the input's voxels: edge values there, never 0; a whole voxel farther out is ``default``."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    x = (np.arange(4, dtype=np.float32)[:, None, None] + 1) * np.ones((4, 3, 3), np.float32)
    shape, fine = target_grid(x.shape, affine, (1.0, 2.0, 2.0))
    assert shape == (8, 3, 3)
    np.testing.assert_allclose(resample(x, affine, shape, fine)[:, 1, 1], [1, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4])
    labels = np.full((4, 3, 3), 7, np.int16)
    assert (resample(labels, affine, shape, fine, nearest=True) == 7).all()
    far = fine.copy()
    far[0, 3] -= 2.0  # output centres at x = -2.5, -1.5, -0.5 … mm; the input's field of view starts at -1 mm
    out = resample(labels, affine, (8, 3, 3), far, nearest=True, default=-1)
    assert (out[:2] == -1).all() and (out[2:] == 7).all()


def test_target_grid_keeps_the_outer_edge_of_the_first_voxel():
    shape, affine = target_grid(SHAPE, LPS, (4.0, 4.0, 6.0))
    assert shape == (4, 3, round(5 * 3 / 6))
    np.testing.assert_allclose(np.diag(affine)[:3], [-4, -4, 6])  # directions kept (LPS stays LPS)
    np.testing.assert_allclose(affine @ [-0.5, -0.5, -0.5, 1], LPS @ [-0.5, -0.5, -0.5, 1])
    for bad in [(1.0, 0.0, 1.0), (1.0, 1.0), (1.0, float("nan"), 1.0)]:
        with pytest.raises(ConfigError, match="three positive values in mm"):
            target_grid(SHAPE, LPS, bad)

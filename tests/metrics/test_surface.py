"""sapkit.metrics._surface: surface distances, NSD and Hausdorff against DeepMind's published vectors and MONAI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sapkit.errors import MetricInputError
from sapkit.metrics import (
    average_surface_distance,
    compute_surface_distances,
    dice,
    hausdorff_distance,
    normalized_surface_dice,
    surface_dice,
    surface_overlap,
)


def _points(shape, a, b):
    gt = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    gt[a] = True
    pred[b] = True
    return gt, pred


CASES = [
    # (gt, pred, spacing, asd, hd100, hd95, overlap@1, nsd@1, dice)
    (*_points((100, 100), (50, 70), (50, 72)), (2, 1), (1.5, 1.5), 2.0, 2.0, (0.5, 0.5), 0.5, 0.0),
    (*_points((100, 100, 100), (50, 60, 70), (50, 60, 72)), (3, 2, 1), (1.5, 1.5), 2.0, 2.0, (0.5, 0.5), 0.5, 0.0),
]


def _slabs():
    gt = np.zeros((100, 100, 100), bool)
    pred = np.zeros_like(gt)
    gt[:50] = True
    pred[:51] = True
    return gt, pred


@pytest.mark.parametrize("gt,pred,spacing,asd,hd,hd95,overlap,nsd,dsc", CASES)
def test_deepmind_point_vectors(gt, pred, spacing, asd, hd, hd95, overlap, nsd, dsc):
    sd = compute_surface_distances(gt, pred, spacing_mm=spacing)
    assert average_surface_distance(sd) == pytest.approx(asd, abs=1e-3)
    assert hausdorff_distance(sd) == pytest.approx(hd, abs=1e-3)
    assert hausdorff_distance(sd, percent=95) == pytest.approx(hd95, abs=1e-3)
    assert surface_overlap(sd, tolerance_mm=1) == pytest.approx(overlap, abs=1e-3)
    assert surface_dice(sd, tolerance_mm=1) == pytest.approx(nsd, abs=1e-3)
    assert dice(gt, pred) == pytest.approx(dsc, abs=1e-3)


def test_deepmind_border_slab_anisotropic():
    gt, pred = _slabs()  # objects touch the image border on 5 faces: padding must close them
    sd = compute_surface_distances(gt, pred, spacing_mm=(2, 1, 1))
    assert average_surface_distance(sd) == pytest.approx((0.322, 0.339), abs=1e-3)
    assert hausdorff_distance(sd) == pytest.approx(2.0)
    assert hausdorff_distance(sd, percent=95) == pytest.approx(2.0)
    assert surface_overlap(sd, tolerance_mm=1) == pytest.approx((0.842, 0.830), abs=1e-3)
    assert surface_dice(sd, tolerance_mm=1) == pytest.approx(0.836, abs=1e-3)
    assert dice(gt, pred) == pytest.approx(0.990, abs=1e-3)


def test_empty_prediction_and_both_empty():
    gt = np.zeros((20, 20, 20), bool)
    gt[5:10, 5:10, 5:10] = True
    empty = np.zeros_like(gt)
    sd = compute_surface_distances(gt, empty, spacing_mm=(1, 1, 2))
    assert surface_dice(sd, tolerance_mm=2) == 0.0
    assert dice(gt, empty) == 0.0
    assert hausdorff_distance(sd) == math.inf
    both = compute_surface_distances(empty, empty, spacing_mm=(1, 1, 2))
    assert math.isnan(surface_dice(both, tolerance_mm=2))
    assert math.isnan(dice(empty, empty))
    assert math.isnan(hausdorff_distance(both))
    assert all(math.isnan(v) for v in average_surface_distance(both))


def test_invalid_inputs_raise():
    a = np.zeros((5, 5, 5), bool)
    with pytest.raises(MetricInputError, match="same grid"):
        compute_surface_distances(a, np.zeros((5, 5, 6), bool), spacing_mm=(1, 1, 1))
    with pytest.raises(MetricInputError, match=r"spacing_mm must be 3 positive numbers \(mm\), got \(1, 1\)"):
        compute_surface_distances(a, a, spacing_mm=(1, 1))
    with pytest.raises(MetricInputError, match="tolerance_mm must be a finite number"):
        surface_dice(compute_surface_distances(a, a, spacing_mm=2.0), tolerance_mm=-1)
    with pytest.raises(MetricInputError, match="positive"):
        normalized_surface_dice(a, a, spacing_mm=(1, 0, 1))
    with pytest.raises(MetricInputError, match="mode"):
        compute_surface_distances(a, a, spacing_mm=(1, 1, 1), mode="mesh")
    with pytest.raises(ValueError):  # MetricInputError is a ValueError
        dice(a, np.zeros((4, 5, 5)))


def _blobs(seed, shape=(24, 22, 20)):
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    gt = noise > 0.05
    pred = ndimage.shift(noise, (0.7, -0.4, 0.3), order=1) > 0.02
    gt[0] |= gt[1]  # touch the border
    return gt, pred


@pytest.mark.parametrize("mode,subvoxels", [("surface", True), ("voxel", False)])
def test_nsd_matches_monai_on_random_blobs(mode, subvoxels):
    import torch
    from monai.metrics import compute_surface_dice

    spacing = (1.5, 0.8, 2.5)
    for seed in range(3):
        gt, pred = _blobs(seed)
        ours = normalized_surface_dice(gt, pred, spacing_mm=spacing, tolerance_mm=2.0, mode=mode)
        t = lambda m: torch.as_tensor(np.stack([~m, m])[None].astype(np.float32))  # noqa: E731
        theirs = compute_surface_dice(t(pred), t(gt), class_thresholds=[2.0], spacing=spacing,
                                      use_subvoxels=subvoxels).item()
        assert ours == pytest.approx(theirs, abs=1e-5)


def test_nsd_invariants():
    gt, pred = _blobs(7)
    sp = (1.0, 2.0, 1.5)
    assert normalized_surface_dice(gt, gt, spacing_mm=sp, tolerance_mm=0) == pytest.approx(1.0)
    a = normalized_surface_dice(gt, pred, spacing_mm=sp, tolerance_mm=1.0)
    b = normalized_surface_dice(pred, gt, spacing_mm=sp, tolerance_mm=1.0)
    assert a == pytest.approx(b)  # symmetric
    big = normalized_surface_dice(gt, pred, spacing_mm=sp, tolerance_mm=50.0)
    assert a < big == pytest.approx(1.0)  # monotone in the tolerance, 1 when all within
    # padding invariance: embedding in a larger empty volume changes nothing
    pad = normalized_surface_dice(np.pad(gt, 3), np.pad(pred, 3), spacing_mm=sp, tolerance_mm=1.0)
    assert pad == pytest.approx(a)


def test_hd95_is_max_of_directions_not_pooled():
    # GT: a large square; pred: the same plus a far-away speck -> only pred->gt has the outlier
    gt = np.zeros((60, 60), bool)
    gt[10:30, 10:30] = True
    pred = gt.copy()
    pred[55, 55] = True
    sd = compute_surface_distances(gt, pred, spacing_mm=(1, 1))
    d_out = np.hypot(55 - 29.5, 55 - 29.5)
    assert hausdorff_distance(sd) == pytest.approx(np.hypot(55.5 - 29.5, 54.5 - 29.5), abs=1.5)
    assert hausdorff_distance(sd, percent=95) < d_out  # speck's 4 edges are < 5 % of pred surface


def test_bounded_distance_test_equals_scipys_exact_transform():
    """The lesion report's "within τ" test (numpy only) against scipy's Euclidean distance transform.

    Random target sets in 2D and 3D, anisotropic spacings, and tolerances that sit exactly on a
    grid distance (2 mm at 1 mm; √(1.3² + 1.2²); 2.6 = 2 × 1.3) where rounding would show.
    """
    from scipy import ndimage

    from sapkit.metrics._surface import _within_tolerance

    rng = np.random.default_rng(0)
    spacings = (0.5, 0.7, 1.0, 1.2, 1.3, 2.0, 3.0)
    checked = 0
    for trial in range(120):
        ndim = 2 if trial % 4 == 0 else 3
        shape = tuple(int(n) for n in rng.integers(3, 14, ndim))
        targets = rng.random(shape) < rng.choice([0.01, 0.05, 0.3])
        if not targets.any():
            continue
        sp = tuple(float(s) for s in rng.choice(spacings, ndim))
        for tol in (0.4, 1.0, 1.3, math.sqrt(2.0), math.hypot(1.3, 1.2), 2.0, 2.6, 3.0):
            expected = ndimage.distance_transform_edt(~targets, sampling=sp) <= tol
            np.testing.assert_array_equal(_within_tolerance(targets, sp, tol), expected)
            checked += 1
    assert checked > 700


def test_face_erosion_equals_scipys_binary_erosion():
    from scipy import ndimage

    from sapkit.metrics._surface import _erode

    rng = np.random.default_rng(1)
    for shape in ((7, 9), (5, 6, 8), (1, 4, 4)):
        for p in (0.3, 0.7, 0.95, 1.0):
            m = rng.random(shape) < p
            np.testing.assert_array_equal(_erode(m), ndimage.binary_erosion(m, border_value=0))

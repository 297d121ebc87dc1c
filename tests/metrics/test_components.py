"""sapkit.metrics._components: sparse foreground and crop-wise regions against plain NumPy/cc3d."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from sapkit.errors import MetricInputError
from sapkit.metrics import _components as C


def _sparse(seed, shape=(37, 41, 64)):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 1.0).astype(np.float32)


@pytest.mark.parametrize("order", ["C", "F"])
def test_foreground_equals_argwhere(order):
    prob = _sparse(0)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    mask = np.asarray(prob > 0.7, order=order)
    xyz, values = C.foreground(mask.astype(np.uint8))
    assert values is None
    assert sorted(map(tuple, xyz.tolist())) == sorted(map(tuple, np.argwhere(mask).tolist()))
    xyz, values = C.foreground(np.asarray(prob, order=order), threshold=0.7)
    assert sorted(map(tuple, xyz.tolist())) == sorted(map(tuple, np.argwhere(prob >= 0.7).tolist()))
    assert np.array_equal(values, prob[tuple(xyz.T)])


def test_regions_hold_whole_components():
    prob = _sparse(1)
    gt = prob > np.quantile(prob, 0.97)
    pred = np.roll(gt, 2, axis=0)
    g_xyz, _ = C.foreground(gt)
    p_xyz, _ = C.foreground(pred)
    n_full = cc3d.connected_components(gt, connectivity=26, return_N=True)[1]
    n_crops, seen = 0, 0
    for region in C.regions(g_xyz, p_xyz, gt.shape, pad=(1, 1, 1)):
        n_crops += C.label(region.scatter(g_xyz, region.gt_index), 26)[1]
        seen += region.gt_index.size
    assert n_crops == n_full and seen == int(gt.sum())


def test_foreground_rejects_bad_maps():
    with pytest.raises(MetricInputError, match="bool or integer"):
        C.foreground(np.zeros((4, 4, 4), np.float32))
    bad = np.zeros((4, 4, 4), np.float32)
    bad[1, 1, 1] = 2.0
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        C.foreground(bad, threshold=0.5, name="prob_map")

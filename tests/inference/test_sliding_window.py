"""Tests of sapkit.inference.sliding_window (issue 5, acceptance 2): body mask, MONAI's grid, body-skipping inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from sapkit.config import ModelConfig
from sapkit.errors import ConfigError, SapkitError
from sapkit.inference.sliding_window import (
    body_mask,
    count_windows,
    lesion_probability,
    predict_probabilities,
    skeleton_labels,
    window_slices,
)
from sapkit.networks.factory import build_model

ROI = (16, 16, 16)
TINY = ModelConfig(backbone="unet", channels=(4, 8))


class Counting(nn.Module):
    """Counts the windows the network sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.n_windows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.n_windows += x.shape[0]
        return self.net(x)


def _phantom(shape=(37, 30, 53), centre=(12, 10), radii=(6, 5), z=(5, 40), seed=0) -> np.ndarray:
    """A narrow 'torso' (elliptic cylinder) in a wide field of view; noise-free air."""
    rng = np.random.default_rng(seed)
    x, y, zz = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    body = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 <= 1
    body &= (zz >= z[0]) & (zz < z[1])
    image = np.zeros((2, *shape), np.float32)
    image[:, body] = 0.3 + 0.7 * rng.random((2, int(body.sum())), dtype=np.float32)
    return image


pytestmark = pytest.mark.usefixtures("one_math_thread")


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return build_model(TINY, 2, seed=0).eval()


@pytest.mark.parametrize("blend", ["constant", "gaussian"])
def test_body_skipping_equals_full_volume_inside_body_with_fewer_windows(net, blend):
    image = _phantom()  # 37 x 30 x 53: not a multiple of the 16^3 ROI
    body = body_mask(image)
    counted = Counting(net)
    full = predict_probabilities(counted, image, roi=ROI, overlap=0.5, blend=blend, sw_batch_size=3,
                                 skip_background=False)
    n_full = counted.n_windows
    counted.n_windows = 0
    skip = predict_probabilities(counted, image, roi=ROI, overlap=0.5, blend=blend, sw_batch_size=3)
    n_skip = counted.n_windows
    expected = count_windows(body, roi=ROI, overlap=0.5)
    assert n_full == expected.n_total == len(window_slices(image.shape[1:], roi=ROI, overlap=0.5)) == 4 * 3 * 6
    assert n_skip == expected.n_evaluated < n_full
    assert full.shape == skip.shape == (2, 37, 30, 53) and skip.dtype == np.float32
    assert np.abs(full - skip)[:, body].max() <= 1e-5
    # Outside the body: background only; probabilities still sum to one everywhere.
    assert skip[1][~body].max() == 0.0 and skip[0][~body].min() == 1.0
    np.testing.assert_allclose(skip.sum(axis=0), 1.0, atol=1e-5)


def test_crop_to_body_runs_on_the_body_box_grid(net):
    image = _phantom(shape=(50, 40, 45), centre=(25, 20), radii=(7, 6), z=(8, 30))
    body = body_mask(image)
    xs, ys, zs = (np.flatnonzero(body.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3))
    box = (slice(xs[0], xs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(zs[0], zs[-1] + 1))
    counted = Counting(net)
    crop = predict_probabilities(counted, image, roi=ROI, overlap=0.5, crop_to_body=True)
    inner = predict_probabilities(net, image[(slice(None), *box)], roi=ROI, overlap=0.5,
                                  body=np.ascontiguousarray(body[box]))
    np.testing.assert_array_equal(crop[(slice(None), *box)], inner)
    assert crop[1][~body].max() == 0.0 and crop[0][~body].min() == 1.0
    skip_count = count_windows(body, roi=ROI, overlap=0.5)
    crop_count = count_windows(body, roi=ROI, overlap=0.5, crop_to_body=True)
    assert counted.n_windows == crop_count.n_evaluated < skip_count.n_evaluated <= skip_count.n_total


def test_volume_smaller_than_roi_matches_monai_padding(net):
    image = _phantom(shape=(20, 11, 30), centre=(10, 5), radii=(5, 4), z=(3, 25))
    full = predict_probabilities(net, image, roi=ROI, overlap=0.5, skip_background=False)
    skip = predict_probabilities(net, image, roi=ROI, overlap=0.5)
    body = body_mask(image)
    assert skip.shape == (2, 20, 11, 30)
    assert np.abs(full - skip)[:, body].max() <= 1e-5
    lesion = lesion_probability(net, image, roi=ROI, overlap=0.5)
    np.testing.assert_array_equal(lesion, skip[1])


def test_flip_tta_is_flip_equivariant(net):
    image = _phantom(shape=(22, 19, 27), centre=(9, 8), radii=(6, 6), z=(2, 24))
    kw = dict(roi=ROI, overlap=0.5, sw_batch_size=4)
    tta = predict_probabilities(net, image, tta_flip=True, **kw)
    tta_flipped = predict_probabilities(net, np.flip(image, (1, 3)).copy(), tta_flip=True, **kw)
    assert tta.shape == (2, 22, 19, 27)
    np.testing.assert_allclose(tta_flipped, np.flip(tta, (1, 3)), atol=1e-5)
    plain = predict_probabilities(net, image, **kw)
    plain_flipped = predict_probabilities(net, np.flip(image, (1, 3)).copy(), **kw)
    assert np.abs(plain_flipped - np.flip(plain, (1, 3))).max() > 1e-4  # without TTA: not equivariant


def test_body_mask_fills_holes_and_drops_noise():
    image = _phantom(shape=(30, 30, 12), centre=(15, 15), radii=(8, 8), z=(0, 12))
    image[:, 13:17, 13:17, :] = 0.0   # a dark 'airway' through the body
    image[:, 2, 2, 2] = 0.9            # one noisy air voxel
    mask = body_mask(image, dilation_voxels=0)
    assert mask[15, 15, 6] and not mask[2, 2, 2] and not mask[0, 0, 0]
    assert body_mask(image, dilation_voxels=2).sum() > mask.sum()
    with pytest.raises(ConfigError, match="body threshold must be in"):
        body_mask(image, threshold=2.0)


def _scipy_body_mask(image: np.ndarray, dilation_voxels: int) -> np.ndarray:
    """The reference definition on the T1 channel: dust, 3D fill, per-axial-slice fill, dilation, all by scipy."""
    import cc3d

    mask = cc3d.dust(image[0] > 0.05, threshold=64, connectivity=26)
    mask = ndimage.binary_fill_holes(mask)
    for z in range(mask.shape[2]):
        mask[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    return ndimage.binary_dilation(mask, iterations=dilation_voxels) if dilation_voxels else mask


@pytest.mark.parametrize("dilation_voxels", [0, 1, 2])
def test_body_mask_equals_scipy_morphology(dilation_voxels):
    rng = np.random.default_rng(7)
    image = ndimage.uniform_filter((rng.random((2, 23, 19, 17)) < 0.55).astype(np.float32), 2) * 0.3
    image[:, 4:15, 3:14, 3:14] = 0.6
    image[:, 7:10, 6:9, 6:9] = 0.0    # a closed 3D cavity
    image[:, 11:13, 10:12, :] = 0.0   # a tube open at both ends: filled slice by slice only
    image[:, 0, :, 5] = 0.6           # a slab touching the edge of the volume
    mask = body_mask(image, dilation_voxels=dilation_voxels)
    np.testing.assert_array_equal(mask, _scipy_body_mask(image, dilation_voxels))
    assert mask[8, 7, 7] and mask[12, 11, 0] == mask[12, 11, 16]


def test_nothing_to_skip_runs_monai_itself(net, monkeypatch):
    import monai.inferers

    calls = []
    real = monai.inferers.sliding_window_inference
    monkeypatch.setattr(monai.inferers, "sliding_window_inference", lambda *a, **k: calls.append(1) or real(*a, **k))
    image = _phantom(shape=(24, 24, 40), centre=(12, 12), radii=(11, 11), z=(0, 40))  # body in every window
    body = body_mask(image)
    counted = Counting(net)
    skip = predict_probabilities(counted, image, roi=ROI, overlap=0.5, body=body)
    full = predict_probabilities(net, image, roi=ROI, overlap=0.5, skip_background=False)
    windows = count_windows(body, roi=ROI, overlap=0.5)
    assert windows.n_evaluated == windows.n_total == counted.n_windows and len(calls) == 2
    np.testing.assert_array_equal(skip[:, body], full[:, body])
    assert skip[1][~body].max() == 0.0 and skip[0][~body].min() == 1.0


def test_window_grid_is_monai_grid():
    assert [s[2] for s in window_slices((16, 16, 40), roi=ROI, overlap=0.5)] == [
        slice(0, 16), slice(8, 24), slice(16, 32), slice(24, 40)]
    assert [s[0] for s in window_slices((10, 16, 16), roi=ROI, overlap=0.5)] == [slice(0, 16)]  # padded


def test_skeleton_majority_vote_per_6_connected_piece():
    labels_in = np.zeros((6, 3, 1), np.int64)
    labels_in[0:4, 1, 0] = [2, 2, 3, 2]     # one 6-connected piece, majority class 2
    labels_in[5, 0, 0] = 3                  # isolated voxel, keeps 3
    labels_in[4, 2, 0] = 1                  # only diagonal to the piece: separate at 6-connectivity
    scores = np.eye(4, dtype=np.float32)[labels_in].transpose(3, 0, 1, 2)
    plain = skeleton_labels(scores, majority_vote=False)
    np.testing.assert_array_equal(plain, labels_in)
    voted = skeleton_labels(scores, majority_vote=True)
    assert voted.dtype == np.int16
    assert voted[0:4, 1, 0].tolist() == [2, 2, 2, 2]
    assert voted[5, 0, 0] == 3 and voted[4, 2, 0] == 1 and voted[0, 0, 0] == 0


def test_input_errors(net):
    image = _phantom(shape=(20, 20, 20))
    with pytest.raises(ConfigError, match="blend must be one of"):
        predict_probabilities(net, image, roi=ROI, blend="linear")
    with pytest.raises(ConfigError, match="overlap must be in"):
        predict_probabilities(net, image, roi=ROI, overlap=1.0)
    with pytest.raises(SapkitError, match=r"channels-first \(C, X, Y, Z\)"):
        predict_probabilities(net, image[0], roi=ROI)
    with pytest.raises(SapkitError, match="body mask shape"):
        predict_probabilities(net, image, roi=ROI, body=np.ones((5, 5, 5), bool))

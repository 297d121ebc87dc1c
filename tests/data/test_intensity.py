"""Per-channel percentile clipping and rescaling to [0, 1]."""

import numpy as np
import pytest

from sapkit.errors import ConfigError, SapkitError
from sapkit.data.intensity import channel_percentiles, scale_intensity


def _expected(channel: np.ndarray, low: float, high: float) -> np.ndarray:
    """The documented rule, written out with numpy: clip to the percentiles, then map them to 0 and 1."""
    lo, hi = np.percentile(channel, [low, high])
    return (np.clip(channel.astype(np.float64), lo, hi) - lo) / (hi - lo)


def test_hand_computed_values_on_a_ramp():
    x = np.arange(101, dtype=np.float32).reshape(1, 101, 1, 1)  # percentile p of 0..100 is p itself
    y = scale_intensity(x, percentiles=(10, 90))
    assert y.dtype == np.float32 and y.shape == x.shape
    line = y[0, :, 0, 0]
    assert line[:11].tolist() == [0.0] * 11 and line[90:].tolist() == [1.0] * 11  # clipped tails
    np.testing.assert_allclose(line[[30, 50, 70]], [0.25, 0.5, 0.75], atol=1e-7)  # (v - 10) / 80
    np.testing.assert_array_equal(channel_percentiles(x, (10, 90)), [[10.0, 90.0]])


def test_random_volume_matches_numpy_rule():
    rng = np.random.default_rng(3)
    image = np.stack([rng.normal(300, 80, (9, 8, 7)), rng.gamma(2.0, 40.0, (9, 8, 7))]).astype(np.float32)
    y = scale_intensity(image, percentiles=(1, 99))
    for c in range(2):
        np.testing.assert_allclose(y[c], _expected(image[c], 1, 99), rtol=0, atol=2e-7)
    # clipping happens in float32, so the bounds land within one float32 step of 0 and 1
    assert abs(float(y.min())) < 1e-6 and abs(float(y.max()) - 1) < 1e-6
    # 1 % of 504 voxels lie below the 1st percentile: they (and the percentile voxel) map to ~0
    assert (y[0] < 1e-6).sum() == int(np.floor(0.01 * (image[0].size - 1))) + 1


def test_constant_channel_maps_to_zeros_and_leaves_the_other_alone():
    rng = np.random.default_rng(0)
    varying = rng.uniform(0, 1000, (5, 6, 7)).astype(np.float32)
    image = np.stack([np.full((5, 6, 7), 42.0, np.float32), varying])
    y = scale_intensity(image)
    assert not y[0].any()
    np.testing.assert_allclose(y[1], _expected(varying, 1, 99), atol=2e-7)


def test_channels_are_scaled_independently():
    rng = np.random.default_rng(1)
    t1, b1000 = rng.normal(100, 10, (6, 6, 6)), rng.normal(50, 5, (6, 6, 6))
    together = scale_intensity(np.stack([t1, b1000]).astype(np.float32))
    alone = scale_intensity(b1000[None].astype(np.float32))
    np.testing.assert_array_equal(together[1], alone[0])
    # rescaling T1 by a positive affine map (another scanner's units) changes neither channel's output
    other_site = scale_intensity(np.stack([1000 * t1 + 7, b1000]).astype(np.float32))
    np.testing.assert_array_equal(other_site[1], together[1])
    np.testing.assert_allclose(other_site[0], together[0], atol=1e-5)


def test_channel_percentiles_per_channel():
    image = np.stack([np.arange(64.0).reshape(4, 4, 4), -np.arange(64.0).reshape(4, 4, 4)])
    p = channel_percentiles(image, (0, 50))
    assert p.shape == (2, 2) and p.dtype == np.float64
    np.testing.assert_array_equal(p, [[0.0, 31.5], [-63.0, -31.5]])


@pytest.mark.parametrize("percentiles", [(99, 1), (5, 5), (-1, 99), (1, 101)])
def test_bad_percentiles_are_a_config_error(percentiles):
    with pytest.raises(ConfigError, match="percentiles must satisfy 0 <= low < high <= 100"):
        scale_intensity(np.zeros((2, 3, 3, 3), np.float32), percentiles=percentiles)


def test_image_must_be_channels_first_4d():
    with pytest.raises(SapkitError, match=r"channels-first \(C, X, Y, Z\) array, got shape \(3, 3, 3\)"):
        scale_intensity(np.zeros((3, 3, 3), np.float32))

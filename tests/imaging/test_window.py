"""sapkit.imaging.window: the display-window limits on known arrays, the grey mapping, and its users."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.imaging.window import DISPLAY_PERCENTILES, RENDER_PERCENTILES, display_window, to_grey


def test_limits_are_the_percentiles_of_the_shown_voxels():
    ramp = np.arange(201, dtype=np.float32).reshape(3, 67)  # 0 … 200
    assert DISPLAY_PERCENTILES == (1.0, 99.0) and RENDER_PERCENTILES == (50.0, 99.5)
    assert display_window(ramp) == pytest.approx((2.0, 198.0))  # numpy's linear percentile of 0…200
    assert display_window(ramp, percentiles=RENDER_PERCENTILES) == pytest.approx((100.0, 199.0))
    body = ramp >= 101  # 101 … 200
    assert display_window(ramp, mask=body) == pytest.approx((101.99, 199.01))
    # order and shape do not matter, only the values
    assert display_window(ramp.T[::-1]) == display_window(ramp.ravel())


def test_flat_and_empty_selections_still_get_a_window():
    low, high = display_window(np.full((4, 4), 7.0))
    assert low == 7.0 and high == pytest.approx(7.0 + 1e-6)
    assert display_window(np.ones(5), mask=np.zeros(5, bool)) == (0.0, 1.0)


def test_grey_levels():
    x = np.array([-5.0, 0.0, 25.0, 50.0, 99.9, 100.0, 1e9])
    assert to_grey(x, (0.0, 100.0)).tolist() == [0, 0, 63, 127, 254, 255, 255]
    assert to_grey(x, (0.0, 100.0)).dtype == np.uint8
    assert to_grey(np.array([3.0, 4.0]), (3.0, 3.0)).tolist() == [0, 255]  # zero width: a step at low


def test_slice_renderer_uses_the_rule():
    from sapkit.plotting.slices import slice_traces

    plane = np.random.default_rng(0).gamma(2.0, 50.0, (30, 40)).astype(np.float32)
    heat = slice_traces(plane)[0]
    np.testing.assert_array_equal(np.asarray(heat.z), to_grey(plane, display_window(plane)))


def test_qc_montage_window_ignores_the_background():
    from sapkit.preprocessing.qc import _window

    plane = np.zeros((10, 10), np.float32)
    plane[2:8, 2:8] = np.linspace(10, 110, 36).reshape(6, 6)
    grey = _window(plane, plane)
    low, high = display_window(plane, mask=plane > 0)  # the body's voxels set the window, not the air
    np.testing.assert_array_equal(grey, to_grey(plane, (low, high)))
    assert grey[0, 0] == 0 and low > 10.0

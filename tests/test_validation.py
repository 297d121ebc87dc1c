"""sapkit.validation: the shared input checks normalise good values and raise the caller's error class."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import ConfigError, MetricInputError, NiftiError
from sapkit.validation import check_connectivity, check_probability_map, check_roi, check_spacing, check_tolerance


def test_good_values_are_normalised():
    assert check_roi(np.array([96.0, 64, 32])) == (96, 64, 32)
    assert check_connectivity(np.int64(18)) == 18 and type(check_connectivity(6)) is int
    assert check_spacing(1.5) == (1.5, 1.5, 1.5)
    assert check_spacing(np.float32(2), ndim=2) == (2.0, 2.0)
    assert check_spacing([0.8, 0.8, 5]) == (0.8, 0.8, 5.0)
    assert check_tolerance(0) == 0.0 and check_tolerance("2.5") == 2.5
    prob = np.linspace(0, 1, 27, dtype=np.float16).reshape(3, 3, 3)
    assert check_probability_map(prob) is prob  # no copy, no cast


@pytest.mark.parametrize("call,message", [
    (lambda e: check_roi([96, 96.5, 96], error=e), r"roi must be 3 positive integers \(voxels\)"),
    (lambda e: check_roi([96, 0, 96], error=e), "roi must be 3 positive integers"),
    (lambda e: check_connectivity(True, error=e), r"connectivity must be one of \(6, 18, 26\)"),
    (lambda e: check_connectivity(4, error=e), "got 4; the kit's default is 26"),
    (lambda e: check_spacing((1, 1), error=e), r"spacing_mm must be 3 positive numbers \(mm\), got \(1, 1\)"),
    (lambda e: check_spacing((1, float("nan"), 1), error=e), "positive numbers"),
    (lambda e: check_spacing("x", error=e), "positive numbers"),
    (lambda e: check_tolerance(-1, error=e), "tolerance_mm must be a finite number ≥ 0, got -1"),
    (lambda e: check_tolerance(float("inf"), error=e), "finite number"),
    (lambda e: check_probability_map(np.zeros((3, 3)), error=e), r"must be 3D \(X, Y, Z\)"),
    (lambda e: check_probability_map(np.zeros((3, 3, 3), np.uint8), error=e), "not a mask"),
    (lambda e: check_probability_map(np.full((2, 2, 2), np.nan, np.float32), error=e), "8 NaN/inf voxels"),
    (lambda e: check_probability_map(np.full((2, 2, 2), 1.5), error=e), r"range \[1.5, 1.5\]"),
])
@pytest.mark.parametrize("error", [ConfigError, MetricInputError, NiftiError])
def test_bad_values_raise_the_callers_error(call, message, error):
    with pytest.raises(error, match=message) as info:
        call(error)
    assert type(info.value) is error

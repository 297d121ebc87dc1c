"""Apparent diffusion coefficient (ADC) from two or more b-values (log-linear least squares).

``S(b) = S0 · exp(-b · ADC)``, so ``ln S`` is a line in ``b`` with slope ``-ADC``. ADC is in
mm²/s when b is in s/mm² (tissue: ~0.5–3 × 10⁻³ mm²/s). A multiplicative field common to all
b-values of a station (coil sensitivity, N4, station scaling) cancels, so ADC can be computed
before or after them. ADC is an optional extra output, not a network input (the paper's two
channels are T1 and b1000).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import numpy.typing as npt

__all__ = ["fit_adc", "ADC_MAX_MM2_S"]

#: Upper clip of ADC (free water at body temperature is ~3 × 10⁻³ mm²/s).
ADC_MAX_MM2_S = 4e-3


def fit_adc(images: Mapping[float, npt.ArrayLike], *, floor_fraction: float = 0.02) -> npt.NDArray[np.float32]:
    """ADC (mm²/s) per voxel from the images of one station at ≥ 2 b-values (s/mm²).

    Parameters
    ----------
    images : mapping b-value → (X, Y, Z) array
        Signal at each b-value, all on one grid.
    floor_fraction : float
        Voxels whose lowest-b signal is below this fraction of its 99th percentile (air, noise)
        get ADC 0.

    Returns
    -------
    (X, Y, Z) float32 in [0, ``ADC_MAX_MM2_S``]

    Raises
    ------
    ValueError
        Fewer than two distinct b-values.

    Examples
    --------
    >>> s0 = np.full((2, 2, 2), 1000.0)
    >>> adc = fit_adc({50.0: s0 * np.exp(-50 * 1.5e-3), 1000.0: s0 * np.exp(-1000 * 1.5e-3)})
    >>> bool(np.allclose(adc, 1.5e-3))
    True
    """
    bs = np.array(sorted(float(b) for b in images), dtype=np.float64)
    if len(np.unique(bs)) < 2:
        raise ValueError(f"ADC needs two or more distinct b-values, got {bs.tolist()}")
    low = np.asarray(images[min(images)], dtype=np.float32)
    floor = max(float(np.percentile(low, 99)) * floor_fraction, 1e-6)
    centred = bs - bs.mean()
    slope = np.zeros(low.shape, np.float64)
    for b, c in zip(bs, centred):
        slope += c * np.log(np.maximum(np.asarray(images[b], dtype=np.float64), floor * 1e-3))
    adc = -slope / float((centred ** 2).sum())
    adc[low < floor] = 0.0
    return np.clip(adc, 0.0, ADC_MAX_MM2_S).astype(np.float32)

"""Inter-station intensity standardisation: one scale factor per station from the overlaps.

Each station has its own receive-coil scaling. For every pair of neighbouring stations the
overlap says how much brighter one is than the other: the neighbour is resampled onto the
station's grid and the factor is the median over the joint body voxels of the voxel-wise
intensity ratio (same anatomy, same voxel), i.e. ``exp(median(ln a − ln b))``. The factors are
chained outwards from a reference station (factor 1), so every station ends on the reference's
scale. A median of voxel-wise ratios is robust to noise, to tissue composition and to the edge
of the field of view; N4 beforehand keeps the in-station bias from leaking into the ratio.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

from sapkit.imaging.resample import resample
from sapkit.preprocessing.geometry import Volume

__all__ = ["overlap_ratio", "chain_factors", "reference_station"]


def overlap_ratio(a: Volume, a_mask: npt.ArrayLike, b: Volume, b_mask: npt.ArrayLike, *,
                  min_overlap_voxels: int = 50) -> tuple[float, int]:
    """Intensity ratio ``a / b`` over their overlap inside both body masks, and the voxel count.

    The ratio is ``exp(median(ln a − ln b))`` over the joint voxels with positive intensity in both.

    ``b`` is resampled onto ``a``'s grid (linear; its mask by nearest neighbour, 0 outside its
    field of view). Returns ``(nan, n)`` when fewer than ``min_overlap_voxels`` voxels overlap.

    Examples
    --------
    >>> aff = np.eye(4); img = np.full((8, 8, 10), 100.0)
    >>> b_aff = aff.copy(); b_aff[2, 3] = 6.0  # b starts 6 slices higher: 4 slices overlap
    >>> ratio, n = overlap_ratio(Volume(img, aff), img > 0, Volume(img * 1.25, b_aff), img > 0)
    >>> round(ratio, 6), n
    (0.8, 256)
    """
    b_on_a = resample(b.array, b.affine, a.array.shape, a.affine)
    mask_on_a = resample(np.asarray(b_mask, dtype=np.uint8), b.affine, a.array.shape, a.affine, nearest=True) > 0
    joint = mask_on_a & np.asarray(a_mask, dtype=bool)
    n = int(joint.sum())
    if n < min_overlap_voxels:
        return float("nan"), n
    a_values = np.asarray(a.array)[joint].astype(np.float64)
    b_values = b_on_a[joint].astype(np.float64)
    positive = (a_values > 0) & (b_values > 0)
    if positive.sum() < min_overlap_voxels:
        return float("nan"), n
    return float(np.exp(np.median(np.log(a_values[positive]) - np.log(b_values[positive])))), n


def chain_factors(ratios: Sequence[float], reference: int) -> list[float]:
    """Per-station factors from neighbour ratios, chained from ``reference`` (factor 1).

    ``ratios[k] = median(station k) / median(station k+1)`` over their overlap; a NaN ratio
    (no usable overlap) counts as 1. Multiplying station ``k`` by ``factor[k]`` brings it onto the
    reference's scale.

    Examples
    --------
    >>> chain_factors([0.5, 2.0], reference=1)  # station 0 is half as bright as 1, station 2 half as bright
    [2.0, 1.0, 2.0]
    """
    n = len(ratios) + 1
    factors = [1.0] * n
    r = [1.0 if not np.isfinite(v) else float(v) for v in ratios]
    for k in range(reference + 1, n):
        factors[k] = factors[k - 1] * r[k - 1]
    for k in range(reference - 1, -1, -1):
        factors[k] = factors[k + 1] / r[k]
    return factors


def reference_station(how: str, body_voxels: Sequence[int]) -> int:
    """Index of the reference station: ``centre``, ``first`` (head end), ``last`` or ``largest`` body.

    Examples
    --------
    >>> reference_station("centre", [5, 9, 7, 3, 1]), reference_station("largest", [5, 9, 7, 3, 1])
    (2, 1)
    """
    n = len(body_voxels)
    return {"centre": (n - 1) // 2, "first": 0, "last": n - 1}.get(how, int(np.argmax(body_voxels)))

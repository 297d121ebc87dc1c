"""Input checks shared by every stage: ROI, connectivity, voxel spacing, probability maps.

One home for the checks that several stages repeat. Each function validates one value at the
boundary and returns it normalised; on a bad value it raises ``error`` (a :class:`SapkitError`
subclass chosen by the caller: :class:`~sapkit.errors.MetricInputError` inside ``sapkit.metrics``,
:class:`~sapkit.errors.ConfigError` for configuration values) with one sentence saying what was
expected, what was given and how to fix it.

Conventions: arrays are ``(X, Y, Z)`` in file voxel order; ``spacing_mm`` is the voxel size in mm
along those axes; connectivity is the 3D voxel neighbourhood (6 faces, 18 faces+edges, 26 all).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, SapkitError

__all__ = [
    "CONNECTIVITIES",
    "check_roi",
    "check_connectivity",
    "check_spacing",
    "check_probability_map",
    "check_tolerance",
    "native_byte_order",
]

CONNECTIVITIES = (6, 18, 26)


def check_roi(roi: Sequence[int], *, what: str = "roi", error: type[SapkitError] = ConfigError) -> tuple[int, int, int]:
    """A patch/window size: three positive whole numbers of voxels.

    Examples
    --------
    >>> check_roi([96, 96, 96])
    (96, 96, 96)
    >>> check_roi([96, 96])
    Traceback (most recent call last):
    ...
    sapkit.errors.ConfigError: roi must be 3 positive integers (voxels), got [96, 96]; e.g. [96, 96, 96]
    """
    try:
        out = tuple(int(r) for r in roi)
        whole = all(float(a) == float(b) for a, b in zip(out, roi))
    except (TypeError, ValueError):
        raise error(f"{what} must be 3 positive integers (voxels), got {roi!r}; e.g. [96, 96, 96]") from None
    if len(out) != 3 or any(r < 1 for r in out) or not whole:
        raise error(f"{what} must be 3 positive integers (voxels), got {roi!r}; e.g. [96, 96, 96]")
    return out  # type: ignore[return-value]


def check_roi_for_network(roi: Sequence[int], factor: int, backbone: str, *, what: str = "roi") -> None:
    """Every side of ``roi`` (voxels) must be a multiple of the network's downsampling ``factor`` and
    at least ``2 × factor``: its deepest feature map keeps ≥ 2 voxels per axis (instance normalisation
    over one voxel is undefined). SwinUNETR: factor 32, so sides 64, 96, 128, …

    Examples
    --------
    >>> check_roi_for_network((96, 96, 64), 32, "swinunetr")
    >>> check_roi_for_network((32, 32, 32), 32, "swinunetr", what="infer.roi")
    Traceback (most recent call last):
    ...
    sapkit.errors.ConfigError: infer.roi [32, 32, 32] must be multiples of 32 of at least 64 voxels per side for the swinunetr backbone (its deepest feature map must keep >= 2 voxels per axis); use e.g. [64, 64, 64]
    """
    low = 2 * int(factor)
    if any(int(r) % factor or int(r) < low for r in roi):
        raise ConfigError(f"{what} {[int(r) for r in roi]} must be multiples of {factor} of at least {low} voxels per side "
                          f"for the {backbone} backbone (its deepest feature map must keep >= 2 voxels per axis); "
                          f"use e.g. {[max(low, int(r) // factor * factor) for r in roi]}")


def check_connectivity(connectivity: int, *, error: type[SapkitError] = ConfigError) -> int:
    """A 3D voxel neighbourhood: 6, 18 or 26.

    Examples
    --------
    >>> check_connectivity(26)
    26
    """
    if isinstance(connectivity, bool) or connectivity not in CONNECTIVITIES:
        raise error(f"connectivity must be one of {CONNECTIVITIES} (3D voxel neighbourhood), got {connectivity!r}; "
                    "the kit's default is 26")
    return int(connectivity)


def check_spacing(spacing_mm: float | Sequence[float], *, ndim: int = 3, what: str = "spacing_mm",
                  error: type[SapkitError] = ConfigError) -> tuple[float, ...]:
    """Voxel size in mm: ``ndim`` finite positive numbers (a scalar means isotropic).

    Examples
    --------
    >>> check_spacing(2.0)
    (2.0, 2.0, 2.0)
    >>> check_spacing([1.5, 1.5, 5])
    (1.5, 1.5, 5.0)
    """
    try:
        arr = np.asarray(spacing_mm, dtype=float)
    except (TypeError, ValueError):
        raise error(f"{what} must be {ndim} positive numbers (mm), got {spacing_mm!r}; pass the scan's voxel "
                    "size, e.g. case.spacing_mm") from None
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise error(f"{what} must be {ndim} positive numbers (mm), got {spacing_mm!r}; pass the scan's voxel "
                    "size, e.g. case.spacing_mm")
    return tuple(float(s) for s in arr)


def check_tolerance(tolerance_mm: float, *, error: type[SapkitError] = ConfigError) -> float:
    """A distance tolerance in mm: a finite number ≥ 0."""
    try:
        tol = float(tolerance_mm)
    except (TypeError, ValueError):
        raise error(f"tolerance_mm must be a finite number ≥ 0, got {tolerance_mm!r}") from None
    if not math.isfinite(tol) or tol < 0:
        raise error(f"tolerance_mm must be a finite number ≥ 0, got {tolerance_mm!r}")
    return tol


def check_probability_map(prob_map: npt.ArrayLike, *, ndim: int = 3,
                          error: type[SapkitError] = ConfigError) -> np.ndarray:
    """A foreground probability map: float values, finite, in [0, 1], ``ndim`` axes.

    Returns the array unchanged (no copy, no cast).
    """
    prob = np.asarray(prob_map)
    if prob.ndim != ndim:
        raise error(f"prob_map must be {ndim}D (X, Y, Z), got shape {prob.shape}; pass one channel.")
    if not np.issubdtype(prob.dtype, np.floating):
        raise error(f"prob_map must be float probabilities in [0, 1], got dtype {prob.dtype}; "
                    "pass the model's probability map, not a mask.")
    if prob.size:
        low, high = prob.min(), prob.max()  # NaN propagates into both
        if not (np.isfinite(low) and np.isfinite(high)):
            raise error(f"prob_map holds {int((~np.isfinite(prob)).sum())} NaN/inf voxels; values must "
                        "be finite and in [0, 1]; check the inference output.")
        if not (low >= 0.0 and high <= 1.0):
            raise error(f"prob_map values must be in [0, 1], got range [{low:g}, {high:g}]; "
                        "apply a sigmoid/softmax first.")
    return prob


def native_byte_order(arr: npt.ArrayLike) -> np.ndarray:
    """``arr`` as an array in the machine's byte order (a copy only when it is not).

    Arrays that enter the metrics may be byte views of another order (a big-endian NIfTI file read
    by nibabel, ``np.frombuffer(..., ">f4")``); the kit's fast paths read raw bytes and would
    mis-count them.

    >>> native_byte_order(np.array([0.5, 1.0], dtype=">f4")).dtype.byteorder in "=<|"
    True
    """
    a = np.asarray(arr)
    if a.dtype.byteorder not in ("=", "|") and a.dtype.byteorder != np.dtype(a.dtype.char).byteorder:
        return a.astype(a.dtype.newbyteorder("="))
    return a


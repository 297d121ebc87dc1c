"""Fast access to the sparse foreground of whole-body masks (private helpers).

Whole-body volumes are mostly empty: lesions fill well under 0.1 % of the voxels. Instead of
labelling the full volume, the foreground is located in one pass over the bytes (a maximum along
the contiguous axis of each row, then a gather of the few rows that hold anything), grouped into
*regions* (connected groups of occupied 8³ blocks) and every region is labelled on its own small
crop. Connected components never cross regions: two 26-adjacent voxels lie in 26-adjacent blocks.
Crops are labelled by :func:`sapkit.imaging.components.label_components` in C raster order, so
lesions are numbered region by region, then by their first voxel in C order within the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import MetricInputError
from sapkit.imaging.components import label_components
from sapkit.metrics._binarise import threshold_in_dtype

__all__ = ["Region", "foreground", "regions", "label"]

_BLOCK = 8


def _as_3d(arr: np.ndarray) -> np.ndarray:
    return arr[..., None] if arr.ndim == 2 else arr


def _unsigned_view(rows: np.ndarray) -> np.ndarray:
    if rows.dtype == np.bool_:
        return rows.view(np.uint8)
    return rows.view(np.dtype(f"u{rows.dtype.itemsize}"))


def _threshold_bits(threshold: float, dtype: np.dtype) -> int:
    """Bit pattern (as unsigned int) of ``threshold`` rounded to ``dtype`` (the kit's threshold rule)."""
    value = np.asarray(threshold_in_dtype(threshold, dtype), dtype=dtype)
    return int(value.view(np.dtype(f"u{dtype.itemsize}")))


def _divisor_at_most(n: int, limit: int, *, multiple_of: int = 1) -> int:
    """Largest divisor of ``n`` that is ≤ ``limit`` and a multiple of ``multiple_of`` (0 if none)."""
    for w in range(limit - limit % multiple_of, 0, -multiple_of):
        if n % w == 0:
            return w
    return 0


def _nonzero_bytes(flat: np.ndarray) -> np.ndarray:
    """Flat indices of the non-zero bytes of a 1-byte array (coarse chunks, then 8-byte words)."""
    width = _divisor_at_most(flat.size, 8192, multiple_of=8)
    if width < 512:
        return np.flatnonzero(flat)
    chunks = flat.reshape(-1, width)
    hit = np.flatnonzero(chunks.max(axis=1))
    words = chunks[hit].view(np.uint64)  # (n_hit, width // 8)
    wi = np.flatnonzero(words)
    word_bytes = words.reshape(-1)[wi].view(np.uint8).reshape(-1, 8)
    r, b = np.nonzero(word_bytes)
    row, col = np.divmod(wi[r], width // 8)
    return hit[row].astype(np.int64) * width + col.astype(np.int64) * 8 + b


def _above_threshold(flat: np.ndarray, threshold: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices and values (in the map's dtype) of ``flat >= threshold`` under the kit's rule, validating [0, 1]."""
    width = _divisor_at_most(flat.size, 8192) or flat.size
    fine = _divisor_at_most(width, 256) or width
    chunks = flat.reshape(-1, width)
    t_bits = _threshold_bits(threshold, flat.dtype)
    one_bits = _threshold_bits(1.0, flat.dtype)
    bits = _unsigned_view(chunks).max(axis=1)
    hit = np.flatnonzero(bits >= t_bits)
    sub = chunks[hit].reshape(-1, fine)
    sub_bits = _unsigned_view(sub).max(axis=1)
    keep = np.flatnonzero(sub_bits >= t_bits)
    sub = sub[keep]
    invalid = sub_bits[keep] > one_bits
    if invalid.any():
        bad = sub[invalid]
        bad = bad[~((bad >= 0) & (bad <= 1))]
        if bad.size:
            raise MetricInputError(
                f"{name} must hold probabilities in [0, 1]; found {bad.size} voxel(s) outside, e.g. "
                f"{float(bad.flat[0])!r}; apply softmax/sigmoid or clip before evaluating"
            )
    r, k = np.nonzero(sub >= np.asarray(threshold_in_dtype(threshold, flat.dtype), dtype=flat.dtype))
    per_chunk = width // fine
    fine_index = hit[keep[r] // per_chunk].astype(np.int64) * per_chunk + keep[r] % per_chunk
    return fine_index * fine + k, sub[r, k]


def foreground(arr: np.ndarray, *, threshold: float | None = None, name: str = "mask",
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.floating] | None]:
    """Coordinates of the foreground voxels of a mask (non-zero) or a probability map (≥ threshold).

    Probability maps are binarised with the kit's one rule (:func:`sapkit.metrics.threshold_mask`:
    ``>=`` the threshold rounded to the map's dtype).

    One pass over the bytes: memory is cut into contiguous chunks of a few thousand voxels and
    each chunk's maximum is taken (on the unsigned bit pattern, which orders non-negative floats
    like their values); only the few chunks holding foreground are scanned further. Probability
    maps are validated on the way at no extra cost (values outside [0, 1] and NaN have bit
    patterns above 1.0's, so their chunks are always scanned).

    Returns
    -------
    coords : (N, 3) int64
        Voxel indices in the array's axis order (a 2D array gets a third axis of size 1).
    values : (N,) float or None
        Probabilities at the coordinates, in the map's dtype (``None`` for masks).
    """
    a = _as_3d(np.asarray(arr))
    transposed = False
    if not a.flags.c_contiguous:
        if a.flags.f_contiguous:
            a, transposed = a.T, True
        else:
            a = np.ascontiguousarray(a)
    flat = a.reshape(-1)
    values = None
    if threshold is None:
        if a.dtype.kind not in "biu":
            raise MetricInputError(
                f"{name} must hold bool or integer values, got dtype {a.dtype}; pass probabilities as "
                "prob_map= with a threshold, or binarise the array first"
            )
        u = _unsigned_view(flat)
        idx = _nonzero_bytes(u) if u.itemsize == 1 else np.flatnonzero(u)
    else:
        if a.dtype.kind != "f":
            raise MetricInputError(f"{name} must be a floating-point probability map, got dtype {a.dtype}")
        idx, values = _above_threshold(flat, float(threshold), name)
    coords = np.stack(np.unravel_index(idx, a.shape), axis=1).astype(np.int64, copy=False)
    if transposed:
        coords = coords[:, ::-1].copy()
    return coords, values


@dataclass(frozen=True)
class Region:
    """One crop holding whole connected components of both masks.

    Attributes
    ----------
    lo : (3,) int64
        Crop start (inclusive) in volume voxel indices.
    shape : tuple of int
        Crop shape.
    gt_index, pred_index : int64 arrays
        Indices into the global GT / prediction coordinate arrays of the voxels in this region.
    """

    lo: npt.NDArray[np.int64]
    shape: tuple[int, int, int]
    gt_index: npt.NDArray[np.int64]
    pred_index: npt.NDArray[np.int64]

    def scatter(self, coords: np.ndarray, index: np.ndarray, values: np.ndarray | None = None,
                dtype: npt.DTypeLike = np.uint8) -> np.ndarray:
        """Dense crop with ``values`` (or 1) at the region's voxels, 0 elsewhere."""
        out = np.zeros(self.shape, dtype=dtype)
        local = coords[index] - self.lo
        out[local[:, 0], local[:, 1], local[:, 2]] = 1 if values is None else values[index]
        return out


def regions(gt_coords: np.ndarray, pred_coords: np.ndarray, shape: Sequence[int], *,
            pad: Sequence[int]) -> Iterator[Region]:
    """Group foreground voxels of both masks into independent crops (padded by ``pad`` voxels)."""
    shape_a = np.asarray(shape, dtype=np.int64)
    n_gt = gt_coords.shape[0]
    coords = np.concatenate([gt_coords, pred_coords], axis=0)
    if coords.shape[0] == 0:
        return
    blocks = coords // _BLOCK
    grid_shape = tuple(int(math.ceil(s / _BLOCK)) for s in shape_a)
    grid = np.zeros(grid_shape, dtype=np.uint8)
    grid[blocks[:, 0], blocks[:, 1], blocks[:, 2]] = 1
    grid_labels, _ = label_components(grid, connectivity=26)
    region_of = grid_labels[blocks[:, 0], blocks[:, 1], blocks[:, 2]].astype(np.int64)
    order = np.argsort(region_of, kind="stable")
    bounds = np.searchsorted(region_of[order], np.arange(1, int(region_of.max()) + 2))
    pad_a = np.asarray(pad, dtype=np.int64)
    for r in range(len(bounds) - 1):
        members = order[bounds[r]:bounds[r + 1]]
        if members.size == 0:
            continue
        pts = coords[members]
        lo = np.maximum(pts.min(axis=0) - pad_a, 0)
        hi = np.minimum(pts.max(axis=0) + pad_a + 1, shape_a)
        yield Region(lo, tuple(int(v) for v in hi - lo), members[members < n_gt],
                     members[members >= n_gt] - n_gt)


def label(crop: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Connected components of a small (C-ordered) crop in C raster order; returns (labels, count)."""
    return label_components(crop, connectivity=connectivity, order="C")

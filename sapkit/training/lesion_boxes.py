"""Lesion boxes of instance-balanced sampling: one box per lesion, and the lesion-free windows.

Instance-balanced (IB) sampling (:class:`sapkit.training.lesion_sampler.InstanceBalancedSampler`)
crops its patches from boxes of at least ``window_size(roi)`` = ``ceil(4/3 × roi)`` voxels per axis:

* :func:`positive_boxes` — one box per connected lesion component: its bounding box plus a margin
  (paper: 10 voxels), grown symmetrically to the window and shifted inside the volume;
* :func:`negative_windows` — every window of the window size, at a stride of half the window,
  that holds no lesion voxel.

Arrays are (X, Y, Z) in file voxel order; box bounds and sizes are in voxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, SapkitError
from sapkit.imaging.components import component_stats, label_components
from sapkit.training.patch_sampler import fit_inside
from sapkit.validation import check_connectivity, check_roi

__all__ = ["PatchBox", "window_size", "positive_boxes", "negative_windows"]


@dataclass(frozen=True)
class PatchBox:
    """An axis-aligned box in one case's voxel grid.

    Attributes
    ----------
    case_index : int
        Position of the case in the sampler's case list.
    start, stop : tuple of 3 int
        Voxel bounds ``[start, stop)`` per axis (X, Y, Z) of the (possibly padded) case grid.
    component : int
        Lesion component id (1..n within the case, numbered in file voxel order: see
        :func:`positive_boxes`) for a positive box; 0 for a negative window.
    """

    case_index: int
    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    component: int

    @property
    def size(self) -> tuple[int, int, int]:
        """Box size in voxels per axis."""
        return tuple(b - a for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    @property
    def is_positive(self) -> bool:
        """True for a lesion box, False for a negative window."""
        return self.component > 0

    def slices(self) -> tuple[slice, slice, slice]:
        """Spatial slices of the box."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]


def window_size(roi: Sequence[int]) -> tuple[int, int, int]:
    """Box size of IB sampling: ``ceil(4/3 × roi)`` per axis (128 for a 96 ROI).

    Examples
    --------
    >>> window_size((96, 96, 96))
    (128, 128, 128)
    >>> window_size((64, 64, 32))
    (86, 86, 43)
    """
    roi = check_roi(roi)
    return tuple(int(math.ceil(4 * r / 3 - 1e-9)) for r in roi)  # type: ignore[return-value]


def positive_boxes(
    lesion: npt.NDArray, *, roi: Sequence[int], margin_voxels: int = 10, connectivity: int = 26,
    case_index: int = 0,
) -> list[PatchBox]:
    """One box per connected lesion component.

    Parameters
    ----------
    lesion : (X, Y, Z) integer array
        Lesion mask (any value > 0 is lesion). Its shape must be ≥ ``window_size(roi)`` per axis
        (the samplers pad smaller volumes first).
    roi : 3 ints
        Training ROI in voxels.
    margin_voxels : int
        Margin added around each component's bounding box, in voxels (paper: 10).
    connectivity : {6, 18, 26}
        Voxel connectivity of lesion components (default 26: face, edge and corner neighbours).
    case_index : int
        Stored in the returned boxes.

    Returns
    -------
    list of PatchBox
        Bounding box + margin, grown symmetrically to at least ``window_size(roi)`` per axis,
        then shifted (never shrunk below the window) to lie inside the volume. Ordered by
        component id: components are numbered by their first voxel in file voxel order (X fastest,
        :func:`sapkit.imaging.components.label_components` with ``order="F"``), the memory order of
        the masks nibabel reads, so the sampler's boxes come in the order they always had.

    Examples
    --------
    >>> m = np.zeros((50, 50, 50), np.uint8); m[20, 20, 20] = 1; m[21, 21, 21] = 1
    >>> [b.size for b in positive_boxes(m, roi=(24, 24, 24))]  # one 26-connected lesion
    [(32, 32, 32)]
    >>> len(positive_boxes(m, roi=(24, 24, 24), connectivity=6))
    2
    """
    roi = check_roi(roi)
    check_connectivity(connectivity)
    if margin_voxels < 0:
        raise ConfigError(f"margin_voxels must be ≥ 0 voxels, got {margin_voxels}; the paper uses 10")
    shape = lesion.shape
    window = window_size(roi)
    if any(s < w for s, w in zip(shape, window)):
        raise SapkitError(f"volume shape {shape} is smaller than the IB window {window}; pad it first")
    labels, n = label_components(lesion, connectivity=connectivity, order="F")
    if n == 0:
        return []
    stats = component_stats(labels)
    boxes = []
    for comp in range(1, n + 1):
        bbox = stats.slices(comp)
        start, stop = [], []
        for ax in range(3):
            lo = bbox[ax].start - margin_voxels
            hi = bbox[ax].stop + margin_voxels
            if hi - lo < window[ax]:
                grow = window[ax] - (hi - lo)
                lo -= grow // 2
                hi += grow - grow // 2
            lo, hi = fit_inside(lo, hi, shape[ax])
            start.append(lo)
            stop.append(hi)
        boxes.append(PatchBox(case_index, tuple(start), tuple(stop), comp))  # type: ignore[arg-type]
    return boxes


def negative_windows(lesion: npt.NDArray, *, roi: Sequence[int], case_index: int = 0) -> list[PatchBox]:
    """All lesion-free windows of size ``window_size(roi)`` at stride half the window.

    Window starts along an axis of length ``n`` are ``0, s, 2s, …`` plus ``n − w`` (so the end
    of the volume is covered), with ``w`` the window and ``s = w // 2``.

    Parameters
    ----------
    lesion : (X, Y, Z) integer array
        Lesion mask, shape ≥ the window per axis.
    roi : 3 ints
        Training ROI in voxels.

    Returns
    -------
    list of PatchBox
        Windows without a single lesion voxel (``component = 0``), in C order of their starts.
    """
    roi = check_roi(roi)
    window = window_size(roi)
    shape = lesion.shape
    if any(s < w for s, w in zip(shape, window)):
        raise SapkitError(f"volume shape {shape} is smaller than the IB window {window}; pad it first")
    starts = [_grid_starts(n, w, max(w // 2, 1)) for n, w in zip(shape, window)]
    fg = np.asarray(lesion) > 0
    # Test slabs first: a lesion-free X slab clears all its windows at once (most of a body).
    out = []
    for x in starts[0]:
        slab_x = fg[x:x + window[0]]
        if not slab_x.any():
            out.extend(PatchBox(case_index, (x, y, z), (x + window[0], y + window[1], z + window[2]), 0)
                       for y in starts[1] for z in starts[2])
            continue
        for y in starts[1]:
            slab_y = slab_x[:, y:y + window[1]]
            has_z = slab_y.any(axis=(0, 1))
            cum = np.concatenate([[0], np.cumsum(has_z)])
            for z in starts[2]:
                if cum[z + window[2]] - cum[z] == 0:
                    out.append(PatchBox(case_index, (x, y, z), (x + window[0], y + window[1], z + window[2]), 0))
    return out


def _grid_starts(n: int, w: int, s: int) -> list[int]:
    """Window starts ``0, s, 2s, …`` along an axis of ``n`` voxels, plus ``n − w`` so the end is covered."""
    starts = list(range(0, n - w + 1, s))
    if starts[-1] != n - w:
        starts.append(n - w)
    return starts

"""Grids of the raw-scan pipeline (RAS+ mm throughout): a volume on its grid, grid corners, the union grid.

A volume is a numpy array ``(X, Y, Z)`` with a 4×4 voxel → world (RAS+ mm) affine. Resampling
onto a grid, and the SimpleITK images registration works on, live in :mod:`sapkit.imaging.resample`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from sapkit.imaging.resample import target_grid

__all__ = ["Volume", "union_grid", "corners_mm", "output_spacing", "output_grid"]


@dataclass(frozen=True)
class Volume:
    """An image on its grid: ``array`` (X, Y, Z) and ``affine`` (4, 4) voxel → world (RAS+ mm)."""

    array: npt.NDArray
    affine: npt.NDArray[np.float64]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size in mm along X, Y, Z."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    @property
    def centre_mm(self) -> npt.NDArray[np.float64]:
        """World position (mm) of the centre of the grid."""
        return (self.affine @ np.r_[(np.asarray(self.array.shape[:3]) - 1) / 2.0, 1.0])[:3]

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.2f}" for s in self.spacing_mm)
        return f"Volume(shape: {self.array.shape}; spacing: ({sp}) mm; centre: {np.round(self.centre_mm, 1).tolist()} mm)"


def corners_mm(shape: Sequence[int], affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(8, 3) world positions (mm) of the eight corner voxel centres of a grid."""
    n = np.asarray(shape[:3], dtype=float) - 1
    idx = np.array([[i, j, k, 1.0] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])])
    return (idx @ np.asarray(affine, dtype=np.float64).T)[:, :3]


def union_grid(grids: Sequence[tuple[Sequence[int], npt.ArrayLike]], *,
               reference: int = 0) -> tuple[tuple[int, int, int], npt.NDArray[np.float64]]:
    """The grid covering every input grid, on the lattice of ``grids[reference]``.

    Voxel size and axes are those of the reference grid; the extent is the union of all voxel
    centres, so grids on the reference lattice map onto it exactly (integer offsets).

    Returns
    -------
    shape : (3,) int
    affine : (4, 4) voxel → world (RAS+ mm)

    Examples
    --------
    >>> a = np.diag([2.0, 2.0, 3.0, 1.0])
    >>> b = a.copy(); b[2, 3] = -27.0  # 9 slices lower
    >>> shape, aff = union_grid([((4, 4, 10), a), ((4, 4, 10), b)])
    >>> shape, float(aff[2, 3])
    ((4, 4, 19), -27.0)
    """
    ref = np.asarray(grids[reference][1], dtype=np.float64)
    inv = np.linalg.inv(ref)
    pts = np.concatenate([corners_mm(shape, aff) for shape, aff in grids])
    idx = (np.c_[pts, np.ones(len(pts))] @ inv.T)[:, :3]
    lo = np.floor(idx.min(axis=0) + 1e-3)
    hi = np.ceil(idx.max(axis=0) - 1e-3)
    affine = ref.copy()
    affine[:3, 3] = (ref @ np.r_[lo, 1.0])[:3]
    shape = tuple(int(v) for v in hi - lo + 1)
    return shape, np.round(affine, 4) + 0.0  # type: ignore[return-value]


def output_spacing(volumes: Sequence[Volume], spacing_mm: Sequence[float] = ()) -> tuple[tuple[float, float, float], str]:
    """Voxel size (mm, X Y Z) of the stitched grid and the rule that chose it.

    ``spacing_mm`` (the profile's ``raw.spacing``: one value = isotropic, or three) when given; else
    the finest spacing of any T1 station on each axis — never the first file's.

    Examples
    --------
    >>> a = Volume(np.zeros((2, 2, 2)), np.diag([2.0, 2.0, 5.0, 1.0]))
    >>> b = Volume(np.zeros((2, 2, 2)), np.diag([1.0, 1.0, 6.0, 1.0]))
    >>> output_spacing([a, b])
    ((1.0, 1.0, 5.0), 'finest T1 spacing per axis')
    >>> output_spacing([a, b], (3.0,))
    ((3.0, 3.0, 3.0), 'raw.spacing')
    """
    if len(spacing_mm):
        values = [float(v) for v in spacing_mm]
        return (tuple(values * 3) if len(values) == 1 else tuple(values)), "raw.spacing"  # type: ignore[return-value]
    finest = np.min(np.array([v.spacing_mm for v in volumes]), axis=0)
    return tuple(float(v) for v in finest), "finest T1 spacing per axis"  # type: ignore[return-value]


def output_grid(volumes: Sequence[Volume], spacing_mm: Sequence[float]
                ) -> tuple[tuple[int, int, int], npt.NDArray[np.float64]]:
    """The stitched grid: the union of ``volumes`` at ``spacing_mm`` (X Y Z, mm).

    Its lattice is that of the first station with exactly this spacing (so stations on it map onto
    the output without interpolation; the union of their voxel centres, :func:`union_grid`), else
    the first station's axes at ``spacing_mm`` covering the union of the stations' voxel boxes.
    """
    grids = [(v.array.shape[:3], v.affine) for v in volumes]
    match = [k for k, v in enumerate(volumes) if np.allclose(v.spacing_mm, spacing_mm, rtol=0, atol=1e-4)]
    if match:
        return union_grid(grids, reference=match[0])
    _, reference = target_grid(grids[0][0], grids[0][1], spacing_mm)
    step = np.asarray(spacing_mm, dtype=np.float64)
    axes = reference[:3, :3] / step  # unit columns
    boxes = np.concatenate([_box_corners_mm(shape, affine) for shape, affine in grids])  # outer voxel edges
    local = (boxes - reference[:3, 3]) @ axes  # mm along each output axis
    lo, hi = local.min(axis=0), local.max(axis=0)
    shape = tuple(int(max(1, np.ceil((h - lo_) / s - 1e-3))) for lo_, h, s in zip(lo, hi, step))
    affine = reference.copy()
    affine[:3, 3] = reference[:3, 3] + axes @ (lo + step / 2)
    return shape, np.round(affine, 4) + 0.0  # type: ignore[return-value]


def _box_corners_mm(shape: Sequence[int], affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(8, 3) world positions (mm) of the outer corners of a grid's voxel box (half a voxel beyond the centres)."""
    n = np.asarray(shape[:3], dtype=float) - 0.5
    idx = np.array([[i, j, k, 1.0] for i in (-0.5, n[0]) for j in (-0.5, n[1]) for k in (-0.5, n[2])])
    return (idx @ np.asarray(affine, dtype=np.float64).T)[:, :3]

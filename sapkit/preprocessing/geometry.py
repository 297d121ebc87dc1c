"""Grids of the raw-scan pipeline (RAS+ mm throughout): a volume on its grid, grid corners, the union grid.

A volume is a numpy array ``(X, Y, Z)`` with a 4×4 voxel → world (RAS+ mm) affine. Resampling
onto a grid, and the SimpleITK images registration works on, live in :mod:`sapkit.imaging.resample`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Volume", "union_grid", "corners_mm"]


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

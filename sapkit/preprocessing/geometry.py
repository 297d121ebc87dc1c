"""Grids and resampling for the raw-scan pipeline (SimpleITK under the hood, RAS+ mm throughout).

A volume is a numpy array ``(X, Y, Z)`` with a 4×4 voxel → world (RAS+ mm) affine. SimpleITK
images are built in the same RAS frame (SimpleITK does not care what its physical frame is
called), so every transform found by registration is in RAS mm as well: a translation ``t``
maps a point ``x`` of the fixed (T1) grid to ``x + t`` in the moving (DWI) station.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Volume", "to_sitk", "reference_image", "resample", "union_grid", "corners_mm"]


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


def _geometry(affine: npt.ArrayLike) -> tuple[list[float], list[float], list[float]]:
    a = np.asarray(affine, dtype=np.float64)
    spacing = np.sqrt((a[:3, :3] ** 2).sum(axis=0))
    direction = a[:3, :3] / spacing[None, :]
    return spacing.tolist(), a[:3, 3].tolist(), direction.ravel().tolist()


def to_sitk(array: npt.ArrayLike, affine: npt.ArrayLike):
    """A SimpleITK image of ``array`` (X, Y, Z) placed by ``affine`` (float32 unless integer input)."""
    import SimpleITK as sitk

    arr = np.asarray(array)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    spacing, origin, direction = _geometry(affine)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def reference_image(shape: Sequence[int], affine: npt.ArrayLike):
    """An empty SimpleITK image defining an output grid (for ``sitk.Resample``)."""
    import SimpleITK as sitk

    image = sitk.Image([int(s) for s in shape[:3]], sitk.sitkUInt8)
    spacing, origin, direction = _geometry(affine)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def resample(array: npt.ArrayLike, affine: npt.ArrayLike, shape: Sequence[int], target_affine: npt.ArrayLike, *,
             transform=None, nearest: bool = False, default: float = 0.0) -> npt.NDArray:
    """Resample a volume onto another grid (linear, or nearest neighbour for labels).

    Parameters
    ----------
    array : (X, Y, Z) array
    affine : (4, 4) voxel → world of ``array``.
    shape, target_affine : the output grid.
    transform : SimpleITK transform, optional
        Maps output-grid world points to ``array``'s world (fixed → moving); identity when None.
    nearest : bool
        Nearest-neighbour interpolation (label maps keep their values and dtype).
    default : float
        Value outside ``array``'s field of view.

    Returns
    -------
    (X', Y', Z') array on the output grid (float32, or the input dtype with ``nearest``).
    """
    import SimpleITK as sitk

    src = np.asarray(array)
    image = to_sitk(src, affine)
    out = sitk.Resample(image, reference_image(shape, target_affine), transform or sitk.Transform(3, sitk.sitkIdentity),
                        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, float(default),
                        image.GetPixelID() if nearest else sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


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

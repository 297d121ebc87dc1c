"""Resampling a volume onto another grid: the kit's one resampler (SimpleITK underneath).

A volume is a numpy array ``(X, Y, Z)`` with a 4×4 voxel → world (RAS+ mm) affine. SimpleITK
images are built in the same frame (SimpleITK does not care what its physical frame is called),
so a transform found by registration is in RAS mm as well: a translation ``t`` maps a point ``x``
of the output grid to ``x + t`` in the input's world. Used by ``sapkit prepare``
(:mod:`sapkit.data.prepare`) and by the raw-scan pipeline (:mod:`sapkit.preprocessing`).

Conventions (pinned by ``tests/imaging/test_resample.py``)
----------------------------------------------------------
- **Field of view**: a voxel fills a box of one spacing around its centre, so an output voxel
  whose centre lies within half a voxel outside the input's outermost voxel centres is *inside*
  the input: linear interpolation takes the nearest edge values there (it does not fade to 0),
  nearest neighbour the voxel it lies in. Farther out, the output is ``default`` (0).
- **Interpolation**: linear for images (output float32); nearest neighbour for label maps
  (values and dtype kept). An output centre exactly halfway between two input centres (a tie,
  e.g. 2 → 3 mm) takes the neighbour SimpleITK's half-up rounding gives after floating-point
  arithmetic; either neighbour is as near.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError
from sapkit.io.nifti import spacing_from_affine

__all__ = ["to_sitk", "reference_image", "resample", "target_grid"]


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
        Value outside ``array``'s field of view (more than half a voxel beyond its outer voxel centres).

    Returns
    -------
    (X', Y', Z') array on the output grid (float32, or the input dtype with ``nearest``).

    Examples
    --------
    >>> a = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> x = np.ones((2, 1, 1), np.float32) * np.array([1.0, 3.0], np.float32)[:, None, None]
    >>> fine = a @ np.diag([0.5, 1.0, 1.0, 1.0]); fine[0, 3] = -0.5  # 1 mm voxels, same field of view
    >>> resample(x, a, (4, 1, 1), fine)[:, 0, 0].tolist()  # edge values up to the field of view's edge
    [1.0, 1.5, 2.5, 3.0]
    """
    import SimpleITK as sitk

    src = np.asarray(array)
    image = to_sitk(src, affine)
    out = sitk.Resample(image, reference_image(shape, target_affine), transform or sitk.Transform(3, sitk.sitkIdentity),
                        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, float(default),
                        image.GetPixelID() if nearest else sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def target_grid(shape: Sequence[int], affine: npt.ArrayLike, spacing_mm: Sequence[float],
                ) -> tuple[tuple[int, ...], npt.NDArray[np.float64]]:
    """Grid covering the same field of view as ``(shape, affine)`` at ``spacing_mm``.

    The outer edge of the first voxel stays in place and the axes keep their directions; the
    shape is rounded to cover the extent.

    Raises
    ------
    ConfigError
        ``spacing_mm`` is not three positive values.

    Examples
    --------
    >>> shape, aff = target_grid((4, 4, 4), np.diag([2.0, 2.0, 2.0, 1.0]), (1.0, 4.0, 2.0))
    >>> shape, np.diag(aff).tolist(), aff[:3, 3].tolist()
    ((8, 2, 4), [1.0, 4.0, 2.0, 1.0], [-0.5, 1.0, 0.0])
    """
    affine = np.asarray(affine, float)
    old = np.array(spacing_from_affine(affine))
    new = np.asarray(spacing_mm, float)
    if new.shape != (3,) or not (np.isfinite(new).all() and (new > 0).all()):
        raise ConfigError(f"target spacing must be three positive values in mm, got {list(spacing_mm)}")
    directions = affine[:3, :3] / old
    new_shape = tuple(int(max(1, round(s * o / n))) for s, o, n in zip(shape, old, new))
    new_affine = np.eye(4)
    new_affine[:3, :3] = directions * new
    new_affine[:3, 3] = affine[:3, 3] + directions @ ((new - old) / 2.0)
    return new_shape, new_affine

"""Connected components of a mask: the kit's one labelling (cc3d underneath).

Every stage that splits a mask into pieces calls this module: lesions of a prediction
(:mod:`sapkit.inference.postprocess`), lesion boxes of instance-balanced sampling
(:mod:`sapkit.training.lesion_boxes`), lesion counts of a manifest, bone pieces of a majority vote,
the crops of the lesion-wise evaluation (:mod:`sapkit.metrics`), body masks and the phantom.

Conventions (pinned by ``tests/imaging/test_components.py``)
-------------------------------------------------------------
- **Foreground**: every voxel ``> 0`` (bool masks as they are). A label map with several values is
  one foreground (components are never split by value); floating-point arrays are refused
  (binarise probabilities first with :func:`sapkit.metrics.threshold_mask`).
- **Connectivity**: 3D ``6`` (faces), ``18`` (faces and edges) or ``26`` (faces, edges and
  corners); 2D ``4`` (edges) or ``8`` (edges and corners).
- **Label order**: components are numbered ``1..n`` by the position of their first voxel in the
  raster order ``order``, 0 is background. ``order="C"`` runs the last axis fastest (numpy's
  default); ``order="F"`` the first axis fastest — for an ``(X, Y, Z)`` volume that is the order a
  NIfTI file stores its voxels, and the memory order of the arrays nibabel returns, so a mask read
  from a file is labelled without a copy. The order is a contract: the lesion sampler draws its
  boxes in this order (``"F"``), and the lesion-wise evaluation numbers lesions by it (``"C"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cc3d
import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, SapkitError

__all__ = ["CONNECTIVITIES_2D", "CONNECTIVITIES_3D", "ComponentStats", "label_components", "component_stats",
           "remove_small_components"]

#: Neighbourhoods of a 2D pixel (edges; edges and corners).
CONNECTIVITIES_2D = (4, 8)
#: Neighbourhoods of a 3D voxel (faces; faces and edges; faces, edges and corners).
CONNECTIVITIES_3D = (6, 18, 26)


def _foreground(mask: npt.ArrayLike, *, name: str = "mask") -> npt.NDArray[np.bool_] | npt.NDArray[np.integer]:
    """The mask's foreground as the array to label: bool as is, unsigned integers as is, signed ``> 0``.

    Unsigned integer masks are passed on without a copy: cc3d labels the non-zero voxels of a
    binary mask, and a multi-valued one is reduced to ``> 0`` first (cc3d would split it by value).

    Raises
    ------
    SapkitError
        A floating-point, complex or object array.
    """
    arr = np.asarray(mask)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "iu":
        raise SapkitError(f"{name} must hold bool or integer values to be split into connected components, got dtype "
                          f"{arr.dtype}; binarise probabilities first (sapkit.metrics.threshold_mask)")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) <= 1:
        return arr
    return arr > 0


def _check(arr: np.ndarray, connectivity: int, order: str) -> int:
    allowed = {2: CONNECTIVITIES_2D, 3: CONNECTIVITIES_3D}.get(arr.ndim)
    if allowed is None:
        raise SapkitError(f"connected components need a 2D or 3D mask, got shape {arr.shape}")
    if isinstance(connectivity, bool) or connectivity not in allowed:
        raise ConfigError(f"connectivity must be one of {allowed} for a {arr.ndim}D mask, got {connectivity!r}")
    if order not in ("C", "F"):
        raise ConfigError(f"order must be 'C' (last axis fastest) or 'F' (first axis fastest), got {order!r}")
    return int(connectivity)


def label_components(mask: npt.ArrayLike, *, connectivity: int = 26, order: Literal["C", "F"] = "C",
                     ) -> tuple[npt.NDArray[np.unsignedinteger], int]:
    """Label the connected components of a mask.

    Parameters
    ----------
    mask : (X, Y, Z) or (X, Y) bool or integer array
        Foreground: every voxel ``> 0``.
    connectivity : {6, 18, 26} in 3D, {4, 8} in 2D
        Neighbourhood joining voxels into one component (default 26).
    order : {"C", "F"}
        Raster order that numbers the components (module docstring): ``"C"`` last axis fastest,
        ``"F"`` first axis fastest (file voxel order of an (X, Y, Z) volume).

    Returns
    -------
    labels : array of the mask's shape, unsigned integers (cc3d picks the width), in memory order ``order``
        0 on background, ``k`` on the voxels of component ``k``.
    n : int
        Number of components.

    Examples
    --------
    >>> m = np.zeros((3, 3), bool); m[0, 2] = m[2, 0] = m[2, 2] = True
    >>> label_components(m, connectivity=4)[0].tolist()  # C order: (0, 2) first
    [[0, 0, 1], [0, 0, 0], [2, 0, 3]]
    >>> label_components(m, connectivity=4, order="F")[0].tolist()  # F order: (2, 0) first
    [[0, 0, 2], [0, 0, 0], [1, 0, 3]]
    """
    fg = _foreground(mask)
    connectivity = _check(fg, connectivity, order)
    fg = np.ascontiguousarray(fg) if order == "C" else np.asfortranarray(fg)
    labels, n = cc3d.connected_components(fg, connectivity=connectivity, return_N=True)
    if connectivity == 8 and n > 1:  # cc3d's 2D 8-connected pass numbers in its own order (3D and 4: raster)
        labels = _renumber_in_raster_order(labels, order)
    return labels, int(n)


def _renumber_in_raster_order(labels: np.ndarray, order: str) -> np.ndarray:
    """Labels renumbered 1..n by the raster position (``order``) of each component's first voxel."""
    flat = labels.ravel(order=order)  # a view: ``labels`` is contiguous in ``order``
    values, first = np.unique(flat, return_index=True)
    keep = values > 0
    values, first = values[keep], first[keep]
    lut = np.zeros(int(values.max()) + 1, dtype=labels.dtype)
    lut[values[np.argsort(first, kind="stable")]] = np.arange(1, values.size + 1, dtype=labels.dtype)
    return lut[labels]


@dataclass(frozen=True)
class ComponentStats:
    """Per-component statistics of a label array; row 0 is the background.

    Attributes
    ----------
    voxel_counts : (n + 1,) int64
        Voxels per label.
    bounding_boxes : (n + 1, ndim, 2) int64
        ``[axis, (first, last)]`` voxel indices, both inclusive.
    centroids : (n + 1, ndim) float64
        Mean voxel index per axis (NaN for an empty label).
    """

    voxel_counts: npt.NDArray[np.int64]
    bounding_boxes: npt.NDArray[np.int64]
    centroids: npt.NDArray[np.float64]

    def slices(self, k: int) -> tuple[slice, ...]:
        """The bounding box of component ``k`` as slices (stop exclusive)."""
        return tuple(slice(int(a), int(b) + 1) for a, b in self.bounding_boxes[k])


def component_stats(labels: npt.NDArray[np.integer]) -> ComponentStats:
    """Voxel counts, bounding boxes and centroids of every label of :func:`label_components`' output.

    Examples
    --------
    >>> lab, n = label_components(np.array([[1, 1, 0, 1]], np.uint8), connectivity=4)
    >>> s = component_stats(lab)
    >>> s.voxel_counts.tolist(), s.slices(2), s.centroids[1].tolist()
    ([1, 2, 1], (slice(0, 1, None), slice(3, 4, None)), [0.0, 0.5])
    """
    raw = cc3d.statistics(labels, no_slice_conversion=True)
    ndim = labels.ndim
    boxes = np.asarray(raw["bounding_boxes"], dtype=np.int64).reshape(-1, ndim, 2)
    return ComponentStats(np.asarray(raw["voxel_counts"], dtype=np.int64), boxes,
                          np.asarray(raw["centroids"], dtype=np.float64).reshape(-1, ndim))


def remove_small_components(mask: npt.ArrayLike, min_voxels: int, *, connectivity: int = 26) -> npt.NDArray[np.bool_]:
    """The mask without its components of fewer than ``min_voxels`` voxels (bool, same shape).

    Examples
    --------
    >>> m = np.zeros((1, 1, 6), bool); m[0, 0, :3] = True; m[0, 0, 5] = True
    >>> remove_small_components(m, 2)[0, 0].tolist()
    [True, True, True, False, False, False]
    """
    fg = _foreground(mask)
    connectivity = _check(fg, connectivity, "C")
    if min_voxels <= 1:
        return fg.astype(bool, copy=False)
    return cc3d.dust(fg, threshold=int(min_voxels), connectivity=connectivity).astype(bool, copy=False)

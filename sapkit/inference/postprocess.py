"""Probability map → lesions: threshold, connected components, small-lesion removal, lesion table.

One function, :func:`lesion_components`, used by manifest-level prediction
(:func:`sapkit.inference.predict.predict_manifest` writes its table as ``<scan_id>_lesions.csv``) and by
the threshold slider of :class:`sapkit.plotting.widgets.LesionExplorer`.

The lesion-wise *evaluation* (:func:`sapkit.metrics.lesion_report`) tabulates predicted
components too, but on sparse crops while matching them to the reference lesions; it does not
call this function (a full-volume labelling pass would cost it several times its run time on
whole-body volumes).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.errors import ConfigError, SapkitError
from sapkit.imaging.components import label_components
from sapkit.label_maps import SKELETON_CLASSES
from sapkit.metrics import CENTROID_COLUMNS, LESION_ID_COLUMNS, threshold_mask
from sapkit.validation import check_connectivity, check_probability_map, check_spacing

__all__ = ["LESION_COLUMNS", "lesion_components"]

#: Columns of a predicted-lesion table: the identity and size columns and the voxel centroids
#: shared by every lesion table (:data:`sapkit.metrics.LESION_ID_COLUMNS`,
#: :data:`sapkit.metrics.CENTROID_COLUMNS`), centroids in mm from the centre of voxel (0, 0, 0)
#: (``_mm``); ``bone_region`` is ``""`` when no skeleton was given.
LESION_COLUMNS = (
    *LESION_ID_COLUMNS, "max_prob", "mean_prob",
    *CENTROID_COLUMNS, "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
    "bone_region",
)
_INT_COLUMNS = ("lesion_id", "n_voxels")
_STR_COLUMNS = ("scan_id", "bone_region")


def lesion_components(
    prob_map: npt.ArrayLike,
    *,
    threshold: float,
    spacing_mm: float | Sequence[float],
    connectivity: int = 26,
    min_volume_ml: float = 0.0,
    skeleton: npt.ArrayLike | None = None,
    scan_id: str = "",
    class_names: Mapping[int, str] | None = None,
) -> tuple[npt.NDArray[np.int32], pd.DataFrame]:
    """Binarise a probability map, split it into lesions, drop small ones and describe each lesion.

    Parameters
    ----------
    prob_map : (X, Y, Z) float array in [0, 1]
        Lesion probability per voxel.
    threshold : float in (0, 1]
        Voxels with ``prob_map >= threshold`` are lesion, compared in the map's dtype (the kit's one
        rule, :func:`sapkit.metrics.threshold_mask`; a float32 map holding ``float32(0.7)`` is
        lesion at 0.7).
    spacing_mm : float or sequence of 3 float
        Voxel size in mm along X, Y, Z (``volume_ml = n_voxels × prod(spacing_mm) / 1000``).
    connectivity : {6, 18, 26}
        Neighbourhood joining voxels into one lesion (26: faces, edges and corners).
    min_volume_ml : float
        Lesions (connected components) smaller than this (mL) are dropped.
    skeleton : (X, Y, Z) int array, optional
        Skeleton label map on the same grid. A lesion's ``bone_region`` is the name of the class
        most of its labelled voxels have (ties → the lower class), ``"none"`` when it touches no
        labelled bone (e.g. a rib), ``"unknown"`` for a class without a name.
    scan_id : str
        Copied into every row.
    class_names : mapping int → str, optional
        Skeleton class names (default :data:`sapkit.label_maps.SKELETON_CLASSES`).

    Returns
    -------
    component_map : (X, Y, Z) int32
        0 outside kept lesions, ``k`` on the voxels of the lesion with ``lesion_id`` ``k``.
    table : DataFrame
        One row per kept lesion, columns :data:`LESION_COLUMNS`; ``lesion_id`` 1..n by
        decreasing volume (ties: C raster order of the lesion's first voxel, last axis fastest). ``max_prob`` and
        ``mean_prob`` are over the lesion's voxels. Empty, with all columns, when no lesion
        remains.

    Raises
    ------
    SapkitError
        ``prob_map`` not 3D, not float, not finite or outside [0, 1]; ``skeleton`` on another grid.
    ConfigError
        ``threshold`` outside (0, 1]; bad spacing, connectivity or ``min_volume_ml``.

    Examples
    --------
    >>> p = np.zeros((4, 4, 4)); p[0, 0, 0:2] = 0.9; p[3, 3, 3] = 0.6
    >>> components, table = lesion_components(p, threshold=0.5, spacing_mm=(10.0, 10.0, 10.0))
    >>> table[["volume_ml", "max_prob", "centroid_z_mm"]].values.tolist()
    [[2.0, 0.9, 5.0], [1.0, 0.6, 30.0]]
    >>> int(components[0, 0, 1]), int(components[3, 3, 3])
    (1, 2)
    """
    prob = check_probability_map(prob_map, error=SapkitError)
    spacing = check_spacing(spacing_mm)
    if not 0.0 < float(threshold) <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}; e.g. 0.5.")
    connectivity = check_connectivity(connectivity)
    if not (np.isfinite(min_volume_ml) and min_volume_ml >= 0):
        raise ConfigError(f"min_volume_ml must be ≥ 0 mL, got {min_volume_ml!r}.")
    bones = None
    if skeleton is not None:
        bones = np.asarray(skeleton)
        if bones.shape != prob.shape:
            raise SapkitError(f"skeleton shape {bones.shape} ≠ prob_map shape {prob.shape}; "
                                   "resample the skeleton onto the probability map's grid.")
    mask = threshold_mask(prob, threshold)
    components, n = label_components(mask, connectivity=connectivity, order="C")
    if n == 0:
        return np.zeros(prob.shape, np.int32), _empty_table()
    flat_idx = np.flatnonzero(mask)
    ids = components.ravel()[flat_idx].astype(np.int64)
    values = prob.ravel()[flat_idx].astype(np.float64)
    counts = np.bincount(ids, minlength=n + 1)
    volume_ml = counts * (float(np.prod(spacing)) / 1000.0)
    keep = np.flatnonzero(volume_ml[1:] >= min_volume_ml) + 1
    if keep.size == 0:
        return np.zeros(prob.shape, np.int32), _empty_table()
    keep = keep[np.lexsort((keep, -counts[keep]))]  # largest first, raster order on ties
    sums = np.bincount(ids, weights=values, minlength=n + 1)
    peaks = np.zeros(n + 1)
    np.maximum.at(peaks, ids, values)
    coords = np.unravel_index(flat_idx, prob.shape)
    centroid_vox = [np.bincount(ids, weights=c, minlength=n + 1)[keep] / counts[keep] for c in coords]
    relabel = np.zeros(n + 1, np.int32)
    relabel[keep] = np.arange(1, keep.size + 1, dtype=np.int32)
    component_map = np.zeros(prob.shape, np.int32)
    component_map.ravel()[flat_idx] = relabel[ids]  # only the lesion voxels: no full-volume gather
    table = pd.DataFrame({
        "scan_id": [scan_id] * keep.size,
        "lesion_id": np.arange(1, keep.size + 1, dtype=np.int64),
        "n_voxels": counts[keep].astype(np.int64),
        "volume_ml": volume_ml[keep],
        "max_prob": peaks[keep],
        "mean_prob": sums[keep] / counts[keep],
        **{f"centroid_{a}_vox": c for a, c in zip("xyz", centroid_vox)},
        **{f"centroid_{a}_mm": c * s for a, c, s in zip("xyz", centroid_vox, spacing)},
        "bone_region": _bone_regions(bones, flat_idx, ids, n, keep, class_names),
    }, columns=list(LESION_COLUMNS))
    return component_map, table


def _bone_regions(bones: np.ndarray | None, flat_idx: np.ndarray, ids: np.ndarray, n: int, keep: np.ndarray,
                  class_names: Mapping[int, str] | None) -> list[str]:
    """Majority non-zero skeleton class name per kept lesion ("" without a skeleton)."""
    if bones is None:
        return [""] * keep.size
    names = dict(class_names or SKELETON_CLASSES)
    under = np.clip(bones.ravel()[flat_idx].astype(np.int64), 0, None)  # negative labels count as no bone
    n_classes = int(under.max()) + 1
    votes = np.bincount(ids * n_classes + under, minlength=(n + 1) * n_classes).reshape(n + 1, n_classes)[keep]
    votes[:, 0] = 0
    winner = votes.argmax(axis=1)  # ties → the lower class
    return [names.get(int(w), "unknown") if v else "none" for w, v in zip(winner, votes.sum(axis=1))]


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c in _INT_COLUMNS else object if c in _STR_COLUMNS
                                      else "float64") for c in LESION_COLUMNS})

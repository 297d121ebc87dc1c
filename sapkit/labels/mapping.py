"""Skeleton label maps: fine → SAP mapping, TotalSegmentator MR → SAP, majority vote, QC tables.

The SAP skeleton map has 10 classes (``sapkit.label_maps.SKELETON_CLASSES``); the kit's fine atlas
(``FINE_ATLAS``) has one label per vertebra and per left/right bone, ribs and discs. Users who
label their healthy cohort with TotalSegmentator's MR models (``total_mr`` + ``vertebrae_mr``)
map the outputs here; TotalSegmentator has no sternum class for MR, so class 9 stays empty.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage

from sapkit.errors import LabelError
from sapkit.imaging.components import label_components
from sapkit.label_maps import FINE_ATLAS, FINE_TO_SKELETON, SKELETON_CLASSES

__all__ = [
    "TOTALSEG_SOURCE",
    "TOTALSEG_TOTAL_MR",
    "TOTALSEG_VERTEBRAE_MR",
    "TOTAL_MR_TO_FINE",
    "VERTEBRAE_MR_TO_FINE",
    "fine_to_skeleton",
    "totalseg_to_fine",
    "totalseg_to_skeleton",
    "majority_vote_components",
    "bone_volumes",
    "skeleton_qc_table",
    "lesion_volume_table",
]

#: Where the TotalSegmentator class ids below come from (facts only; no code copied).
TOTALSEG_SOURCE = ("TotalSegmentator v2 (Wasserthal et al., Radiology AI 2023; D'Antonoli et al., Radiology 2025 for MRI), "
                   "github.com/wasserth/TotalSegmentator, file totalsegmentator/map_to_binary.py, dict class_map "
                   "keys 'total_mr' and 'vertebrae_mr' (Apache-2.0), read at commit 0275d3046117a9615a9876e6e4eefd5156843f1c")

#: TotalSegmentator ``total_mr`` output ids → class names (50 classes).
TOTALSEG_TOTAL_MR: Mapping[int, str] = MappingProxyType(dict(enumerate([
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas", "adrenal_gland_right",
    "adrenal_gland_left", "lung_left", "lung_right", "esophagus", "small_bowel", "duodenum", "colon",
    "urinary_bladder", "prostate", "sacrum", "vertebrae", "intervertebral_discs", "spinal_cord", "heart", "aorta",
    "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left", "iliac_artery_right",
    "iliac_vena_left", "iliac_vena_right", "humerus_left", "humerus_right", "scapula_left", "scapula_right",
    "clavicula_left", "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
    "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right", "iliopsoas_left",
    "iliopsoas_right", "brain"], start=1)))

#: TotalSegmentator ``vertebrae_mr`` output ids → names: 1 sacrum, 2–6 L5–L1, 7–18 T12–T1, 19–25 C7–C1.
TOTALSEG_VERTEBRAE_MR: Mapping[int, str] = MappingProxyType(
    {1: "sacrum", **{1 + i: f"vertebrae_L{6 - i}" for i in range(1, 6)},
     **{6 + i: f"vertebrae_T{13 - i}" for i in range(1, 13)}, **{18 + i: f"vertebrae_C{8 - i}" for i in range(1, 8)}})

#: ``total_mr`` id → fine-atlas label (bones only; 19 'vertebrae' needs ``vertebrae_mr``; discs → 61).
TOTAL_MR_TO_FINE: Mapping[int, int] = MappingProxyType({
    18: 25, 20: 61, 30: 30, 31: 31, 32: 32, 33: 33, 34: 34, 35: 35, 36: 26, 37: 27, 38: 28, 39: 29})

#: ``vertebrae_mr`` id → fine-atlas label (C1 = 1 … L5 = 24, sacrum = 25).
VERTEBRAE_MR_TO_FINE: Mapping[int, int] = MappingProxyType(
    {1: 25, **{1 + i: 25 - i for i in range(1, 6)}, **{6 + i: 20 - i for i in range(1, 13)},
     **{18 + i: 8 - i for i in range(1, 8)}})

_SKELETON_LUT = np.zeros(256, np.uint8)
for _k, _v in FINE_TO_SKELETON.items():
    _SKELETON_LUT[_k] = _v


def _check_label_values(label_map: np.ndarray, known: Mapping[int, str], name: str) -> None:
    if label_map.ndim != 3:
        raise LabelError(f"{name} must be a 3-D (X, Y, Z) label map, got shape {label_map.shape}")
    if label_map.dtype.kind not in "iu":
        raise LabelError(f"{name} must hold integers, got dtype {label_map.dtype}; cast with .astype(np.int16)")
    values = set(int(v) for v in np.unique(label_map))
    bad = sorted(values - set(known))
    if bad:
        raise LabelError(f"{name} holds values {bad} that are not in its map (expected a subset of "
                               f"{min(known)}–{max(known)}); check which label map the file uses")


def fine_to_skeleton(fine_label: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Map a fine-atlas label map to the 10-class SAP map (docs/method.md §2.4 grouping).

    Parameters
    ----------
    fine_label : (X, Y, Z) int array
        Values in ``sapkit.label_maps.FINE_ATLAS`` (0–61).

    Returns
    -------
    (X, Y, Z) uint8
        C1–C7 → 1, T1–T12 → 2, L1–L5 + sacrum → 3, femur → 4, hip bones → 5, humerus → 6,
        scapula → 7, clavicle → 8, sternum → 9, ribs and discs → 0.

    Raises
    ------
    LabelError
        Not 3-D, not integer, or a value outside the fine atlas.

    Examples
    --------
    >>> import numpy as np
    >>> fine_to_skeleton(np.array([[[0, 7, 8, 25, 27, 40, 61]]])).tolist()
    [[[0, 1, 2, 3, 4, 0, 0]]]
    """
    fine = np.asarray(fine_label)
    _check_label_values(fine, FINE_ATLAS, "fine_label")
    return _SKELETON_LUT[fine]


def totalseg_to_fine(total_mr: npt.ArrayLike, vertebrae_mr: npt.ArrayLike | None = None) -> npt.NDArray[np.uint8]:
    """Combine TotalSegmentator ``total_mr`` (and ``vertebrae_mr``) outputs into the fine atlas.

    ``total_mr`` has one class for all vertebrae (19); each of its voxels takes the level of the
    nearest ``vertebrae_mr`` voxel. Non-bone classes map to 0; there is no sternum or rib class.

    Raises
    ------
    LabelError
        Unknown ids, different shapes, or vertebra voxels without a ``vertebrae_mr`` map.
    """
    total = np.asarray(total_mr)
    _check_label_values(total, {0: "background", **TOTALSEG_TOTAL_MR}, "total_mr")
    lut = np.zeros(256, np.uint8)
    for k, v in TOTAL_MR_TO_FINE.items():
        lut[k] = v
    fine = lut[total]
    vert = total == 19
    if vert.any():
        if vertebrae_mr is None:
            raise LabelError("total_mr has 'vertebrae' voxels (class 19) but no vertebrae_mr map was given; "
                                   "run TotalSegmentator --task vertebrae_mr and pass its output")
        levels = np.asarray(vertebrae_mr)
        if levels.shape != total.shape:
            raise LabelError(f"vertebrae_mr shape {levels.shape} ≠ total_mr shape {total.shape}; use outputs of one scan")
        _check_label_values(levels, {0: "background", **TOTALSEG_VERTEBRAE_MR}, "vertebrae_mr")
        vlut = np.zeros(256, np.uint8)
        for k, v in VERTEBRAE_MR_TO_FINE.items():
            vlut[k] = v
        level_fine = vlut[levels]
        if not level_fine.any():
            raise LabelError("vertebrae_mr is empty; cannot assign vertebra levels")
        _, idx = ndimage.distance_transform_edt(level_fine == 0, return_indices=True)
        nearest = level_fine[tuple(idx)]
        fine[vert] = nearest[vert]
    return fine


def totalseg_to_skeleton(total_mr: npt.ArrayLike, vertebrae_mr: npt.ArrayLike | None = None) -> npt.NDArray[np.uint8]:
    """TotalSegmentator MR outputs → 10-class SAP map (via :func:`totalseg_to_fine`)."""
    return _SKELETON_LUT[totalseg_to_fine(total_mr, vertebrae_mr)]


def majority_vote_components(label_map: npt.ArrayLike, *, connectivity: int = 6) -> npt.NDArray:
    """Give every connected piece of bone (any non-zero label) its most frequent label.

    Parameters
    ----------
    label_map : (X, Y, Z) int array
    connectivity : {6, 18, 26}
        Neighbourhood of the foreground components (default 6, docs/method.md §5).

    Returns
    -------
    (X, Y, Z) array of the input dtype
        Ties go to the smallest label.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 1, 7), np.int16); a[0, 0, :3] = [2, 2, 3]; a[0, 0, 5] = 4
    >>> majority_vote_components(a)[0, 0].tolist()
    [2, 2, 2, 0, 0, 4, 0]
    """
    lab = np.asarray(label_map)
    if lab.ndim != 3 or lab.dtype.kind not in "iu":
        raise LabelError(f"label_map must be a 3-D integer array, got shape {lab.shape} dtype {lab.dtype}")
    if connectivity not in (6, 18, 26):
        raise LabelError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    comp, n = label_components(lab, connectivity=connectivity, order="C")
    if n == 0:
        return lab.copy()
    fg = comp > 0
    values = lab[fg].astype(np.int64)
    n_labels = int(values.max()) + 1
    counts = np.bincount(comp[fg].astype(np.int64) * n_labels + values, minlength=(n + 1) * n_labels)
    winner = counts.reshape(n + 1, n_labels).argmax(axis=1).astype(lab.dtype)
    out = np.zeros_like(lab)
    out[fg] = winner[comp[fg]]
    return out


def bone_volumes(label_map: npt.ArrayLike, *, spacing_mm: tuple[float, float, float],
                 classes: Mapping[int, str] = SKELETON_CLASSES) -> pd.DataFrame:
    """Voxel count and volume (mL) per class (background excluded), absent classes included as 0.

    Returns
    -------
    DataFrame
        Columns ``class_id, bone, n_voxels, volume_ml``; one row per non-zero class.
    """
    lab = np.asarray(label_map)
    if len(spacing_mm) != 3 or min(spacing_mm) <= 0:
        raise LabelError(f"spacing_mm must be 3 positive values in mm, got {spacing_mm}")
    counts = np.bincount(lab.ravel().astype(np.int64), minlength=max(classes) + 1)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    rows = [(k, name, int(counts[k]), int(counts[k]) * voxel_ml) for k, name in classes.items() if k != 0]
    return pd.DataFrame(rows, columns=["class_id", "bone", "n_voxels", "volume_ml"])


def skeleton_qc_table(manifest, *, scan_ids: list[str] | None = None, column: str = "skeleton_label",
                      z_threshold: float = 3.5) -> pd.DataFrame:
    """Per-bone volumes of every labelled scan with outliers against the cohort flagged.

    A bone is an outlier when it is missing (0 voxels) or its robust z-score
    ``0.6745·(v − median)/MAD`` over all scans of the table exceeds ``z_threshold`` in magnitude.

    Parameters
    ----------
    manifest : sapkit.data.manifest.Manifest
    scan_ids : list of str, optional
        Scans to include (default: every scan with a label in ``column``).
    column : str
        Label column (``skeleton_label``).
    z_threshold : float

    Returns
    -------
    DataFrame
        Columns ``scan_id, subject_id, class_id, bone, n_voxels, volume_ml, cohort_median_ml,
        robust_z, outlier``.
    """
    from sapkit.io.nifti import read_label, spacing_from_affine

    rows = manifest.scans
    rows = rows[rows[column] != ""]
    if scan_ids is not None:
        rows = rows[rows["scan_id"].isin(scan_ids)]
    tables = []
    for _, row in rows.iterrows():
        lab, affine, _ = read_label(row[column], allowed=set(SKELETON_CLASSES), what=column)
        t = bone_volumes(lab, spacing_mm=spacing_from_affine(affine))
        t.insert(0, "subject_id", row["subject_id"])
        t.insert(0, "scan_id", row["scan_id"])
        tables.append(t)
    cols = ["scan_id", "subject_id", "class_id", "bone", "n_voxels", "volume_ml", "cohort_median_ml", "robust_z", "outlier"]
    if not tables:
        return pd.DataFrame(columns=cols)
    table = pd.concat(tables, ignore_index=True)
    grp = table.groupby("class_id")["volume_ml"]
    med = grp.transform("median")
    mad = grp.transform(lambda v: float(np.median(np.abs(v - np.median(v)))))
    z = 0.6745 * (table["volume_ml"] - med) / mad.where(mad > 0, np.nan)
    table["cohort_median_ml"] = med
    table["robust_z"] = z.fillna(0.0)
    table["outlier"] = (table["n_voxels"] == 0) | (table["robust_z"].abs() > z_threshold)
    return table[cols]


def lesion_volume_table(manifest, *, connectivity: int = 26) -> pd.DataFrame:
    """One row per lesion (connected component) of every patient scan's lesion mask.

    Returns
    -------
    DataFrame
        Columns ``scan_id, subject_id, lesion_id, n_voxels, volume_ml``; empty (same columns)
        when no scan has lesions.
    """
    from sapkit.io.nifti import read_label, spacing_from_affine

    if connectivity not in (6, 18, 26):
        raise LabelError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    rows = []
    for _, row in manifest.scans[manifest.scans["lesion_label"] != ""].iterrows():
        lesion, affine, _ = read_label(row["lesion_label"], what="lesion_label")
        comp, _ = label_components(lesion, connectivity=connectivity, order="C")  # lesion_id: C raster order
        sizes = np.bincount(comp.ravel())[1:]
        voxel_ml = float(np.prod(spacing_from_affine(affine))) / 1000.0
        rows += [(row["scan_id"], row["subject_id"], k, int(n), int(n) * voxel_ml) for k, n in enumerate(sizes, start=1)]
    return pd.DataFrame(rows, columns=["scan_id", "subject_id", "lesion_id", "n_voxels", "volume_ml"])


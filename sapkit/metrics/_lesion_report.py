"""Lesion-wise evaluation of one scan: components, matching, per-lesion Dice/IoU/NSD, per-scan summary.

Definitions (``docs/metrics.md`` §3–§8, pinned by tests)
--------------------------------------------------------
- Lesions are connected components (connectivity 6, 18 or 26; default 26) of the binary masks.
- Hit rule ``"any"`` (default, the paper's): a GT lesion is detected when any predicted
  component overlaps it by ≥ 1 voxel; every overlapping component is credited to it.
  ``"iou:T"``: one-to-one matching of pairs with IoU ≥ T, greedily by decreasing IoU.
- A prediction credited to no GT lesion is a false positive (FP); FP per exam counts them.
- A detected lesion's Dice, IoU and NSD compare it with the *whole* union of its credited
  predicted components (many-to-one, as panoptica and Metrics Reloaded), computed inside the
  bounding box of the lesion and those components (``lesion_scores="whole"``, default).
  ``lesion_scores="box"`` keeps only the predicted voxels inside the lesion's bounding box padded
  by ``ceil(τ / spacing) + 1`` voxels (kit ≤ 0.x behaviour: optimistic for spilling predictions).
  Missed lesions get Dice 0, IoU 0 and NSD 0.
- Probability maps are binarised by the kit's one rule, ``prob >= t`` in the map's own dtype
  (:func:`sapkit.metrics.threshold_mask`).
- Volume in mL = voxel count × voxel volume (mm³) / 1000; "large" lesions have volume ≥
  ``large_lesion_ml`` (1 mL), compared with a relative tolerance of 1e-9 against rounding.
- Global Dice treats all lesions as one foreground (NaN when both masks are empty).

Counts, ratios and table columns are defined in :mod:`sapkit.metrics._lesion_tables`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import LesionLabelWarning, MetricInputError
from sapkit.imaging.components import ComponentStats, component_stats
from sapkit.label_maps import SKELETON_CLASSES
from sapkit.metrics import _components as C
from sapkit.metrics._lesion_matching import match, overlaps, parse_hit
from sapkit.metrics._lesion_tables import OVERSIZE_ML, PRECISION_RULES, LesionParams, LesionReport, _summarise
from sapkit.metrics._overlap import _dice_from_counts, _iou_from_counts
from sapkit.metrics._surface import NSD_MODES, _surface_dice_of_boxes
from sapkit.validation import check_connectivity, check_spacing, check_tolerance, native_byte_order

__all__ = ["LESION_SCORES", "lesion_report"]

_REL_TOL = 1e-9
LESION_SCORES = ("whole", "box")


def _check_inputs(gt_mask: npt.ArrayLike, pred_mask: npt.ArrayLike | None, prob_map: npt.ArrayLike | None,
                  threshold: float | None, spacing_mm: float | Sequence[float], skeleton: npt.ArrayLike | None,
                  ) -> tuple[np.ndarray, np.ndarray, bool, tuple[float, float, float], np.ndarray | None]:
    """Validated (gt, prediction, is_prob, spacing as 3 floats, skeleton as 3D or None)."""
    gt = native_byte_order(gt_mask)
    if (pred_mask is None) == (prob_map is None):
        raise MetricInputError("give exactly one of pred_mask= (binary) or prob_map= with threshold=")
    if prob_map is not None:
        pred = native_byte_order(prob_map)
        if threshold is None or not (0 < float(threshold) <= 1):
            raise MetricInputError(f"threshold must be in (0, 1] when prob_map is given, got {threshold!r}")
    else:
        pred = native_byte_order(pred_mask)
    if gt.ndim not in (2, 3):
        raise MetricInputError(f"gt_mask must be a 2D or 3D array, got shape {gt.shape}")
    if pred.shape != gt.shape:
        raise MetricInputError(
            f"prediction shape {pred.shape} ≠ gt_mask shape {gt.shape}; resample the prediction onto the GT grid"
        )
    sp = check_spacing(spacing_mm, ndim=gt.ndim, error=MetricInputError) + (1.0,) * (3 - gt.ndim)
    skel = None
    if skeleton is not None:
        skel = C._as_3d(native_byte_order(skeleton))
        if skel.shape != C._as_3d(gt).shape:
            raise MetricInputError(f"skeleton shape {np.shape(skeleton)} ≠ gt_mask shape {gt.shape}; resample it first")
    return gt, pred, prob_map is not None, sp, skel  # type: ignore[return-value]


def _pad_voxels(tolerance_mm: float, spacing: Sequence[float]) -> np.ndarray:
    return np.array([int(math.ceil(tolerance_mm / s)) + 1 for s in spacing], dtype=np.int64)


def _score_box(g: int, preds: Sequence[int], g_stats: ComponentStats, p_stats: ComponentStats | None,
               pad: np.ndarray | None, shape: Sequence[int]) -> tuple[slice, ...]:
    """Crop (of a region) in which GT lesion ``g`` is scored against its credited predictions ``preds``.

    ``pad`` None (``lesion_scores="whole"``): the bounding box of the lesion *and* its whole
    credited components, which holds both masks entirely. Otherwise (``"box"``): the lesion's box
    padded by ``pad`` voxels, cutting off any predicted voxels outside it.
    """
    box = g_stats.bounding_boxes[g]  # (first, last) inclusive per axis
    lo, hi = box[:, 0], box[:, 1] + 1
    if pad is None:
        for p in preds:
            pb = p_stats.bounding_boxes[p]  # type: ignore[union-attr]
            lo, hi = np.minimum(lo, pb[:, 0]), np.maximum(hi, pb[:, 1] + 1)
    else:
        lo, hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, np.asarray(shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _bone_of(g_lab: np.ndarray, n_g: int, local: np.ndarray, bone: np.ndarray | None) -> np.ndarray:
    """Majority non-zero skeleton class of each GT lesion of a crop (index = lesion id; 0 = no bone).

    ``local`` holds the crop coordinates of the GT voxels and ``bone`` their skeleton classes.
    Ties go to the lower class.
    """
    bone_of = np.zeros(n_g + 1, dtype=np.int64)
    if bone is None or not n_g:
        return bone_of
    ids = g_lab[local[:, 0], local[:, 1], local[:, 2]].astype(np.int64)
    keep = bone > 0
    if keep.any():
        n_cls = int(bone.max()) + 1
        votes = np.bincount(ids[keep] * n_cls + bone[keep], minlength=(n_g + 1) * n_cls).reshape(n_g + 1, n_cls)
        has = votes.sum(axis=1) > 0
        bone_of[has] = votes[has].argmax(axis=1)
    return bone_of


def _mixed_components(g_lab: np.ndarray, n_g: int, local: np.ndarray, values: np.ndarray) -> int:
    """Number of GT components of a crop whose voxels carry more than one mask value (touching instances)."""
    ids = g_lab[local[:, 0], local[:, 1], local[:, 2]].astype(np.intp)
    lo = np.full(n_g + 1, np.inf)
    hi = np.full(n_g + 1, -np.inf)
    np.minimum.at(lo, ids, values)
    np.maximum.at(hi, ids, values)
    return int(np.count_nonzero(lo[1:] != hi[1:]))


def _warn_merged(n_mixed: int, n_labels: int, scan_id: str) -> None:
    where = f"scan {scan_id!r}" if scan_id else "gt_mask"
    warnings.warn(
        f"{where}: {n_mixed} lesion(s) join touching voxels of different mask values ({n_labels} positive values in "
        "all); lesions are the connected components of the non-zero voxels (docs/metrics.md §3), so touching "
        "instances count as one lesion — separate them by a background voxel in the mask if they are distinct "
        "lesions", LesionLabelWarning, stacklevel=3)


def lesion_report(
    gt_mask: npt.ArrayLike,
    pred_mask: npt.ArrayLike | None = None,
    *,
    spacing_mm: float | Sequence[float],
    prob_map: npt.ArrayLike | None = None,
    threshold: float | None = None,
    connectivity: int = 26,
    hit: str = "any",
    tolerance_mm: float = 2.0,
    nsd_mode: str = "surface",
    skeleton: npt.ArrayLike | None = None,
    large_lesion_ml: float = 1.0,
    scan_id: str = "",
    lesion_scores: str = "whole",
    precision: str = "lesion",
    oversize_ml: float = OVERSIZE_ML,
) -> LesionReport:
    """Lesion-wise evaluation of one scan (``docs/metrics.md`` §3–§8).

    Only the non-empty parts of the volume are labelled: the foreground is located in one pass
    over the masks' bytes and each group of nearby voxels is labelled in its own small crop.

    Parameters
    ----------
    gt_mask : (X, Y, Z) or (X, Y) array of bool or int
        Ground-truth lesion mask; any non-zero value is lesion.
    pred_mask : array of bool or int, optional
        Binary prediction on the same grid (or give ``prob_map`` and ``threshold``).
    spacing_mm : float or sequence of float
        Voxel size per axis in mm (a scalar means isotropic).
    prob_map : (X, Y, Z) float16/float32 in [0, 1], optional
        Lesion probability; the prediction is ``prob_map >= threshold`` compared in the map's
        dtype (:func:`sapkit.metrics.threshold_mask`).
    threshold : float, optional
        In (0, 1]; required with ``prob_map``.
    connectivity : {6, 18, 26}
        Neighbourhood of the connected components (3D; in 2D 6 → 4 and 18/26 → 8).
    hit : str
        ``"any"`` (≥ 1 voxel overlap) or ``"iou:T"`` (one-to-one, IoU ≥ T).
    tolerance_mm : float
        NSD tolerance τ in mm.
    nsd_mode : {"surface", "voxel"}
        Surface-element areas (Nikolov et al.) or boundary-voxel counts.
    skeleton : (X, Y, Z) array of int, optional
        Skeleton label map (SAP classes); each lesion gets the most frequent non-zero class
        among its voxels (``bone_label`` 0, region "unlabelled", when it touches no bone).
    large_lesion_ml : float
        Volume (mL) at or above which a lesion or prediction counts as large (≥ 1 mL subset).
    scan_id : str
        The scan's id, written into every table row and the summary.
    lesion_scores : {"whole", "box"}
        Per-lesion Dice/IoU/NSD against the whole credited predicted components (default) or
        only their voxels inside the lesion's padded bounding box.
    precision : {"lesion", "prediction"}
        What precision counts as a hit: detected GT lesions (TP / (TP + FP), default) or predicted
        components that overlap a lesion ((components − FP) / components); F2 follows.
    oversize_ml : float
        Predicted components larger than this (mL) are flagged ``oversized``; components credited
        with ≥ 2 lesions are flagged ``merges_lesions`` (docs/metrics.md §15). Flags never change a count.

    Returns
    -------
    LesionReport

    Raises
    ------
    MetricInputError
        Shapes differ, spacing is not one positive value per axis, a probability map holds
        values outside [0, 1], or an option is out of range.

    Warns
    -----
    LesionLabelWarning
        The GT mask holds instance labels and some touching instances were joined into one lesion.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((20, 20, 20), np.uint8); gt[2:6, 2:6, 2:6] = 1; gt[12:15, 12:15, 12:15] = 1
    >>> pred = np.zeros_like(gt); pred[3:6, 3:6, 3:6] = 1; pred[0, 19, 19] = 1
    >>> r = lesion_report(gt, pred, spacing_mm=(1, 1, 1))
    >>> r.patient.tp, r.patient.fn, r.patient.fp
    (1, 1, 1)
    """
    gt, pred, is_prob, sp, skel = _check_inputs(gt_mask, pred_mask, prob_map, threshold, spacing_mm, skeleton)
    conn = check_connectivity(connectivity, error=MetricInputError)
    rule = parse_hit(hit)
    if nsd_mode not in NSD_MODES:
        raise MetricInputError(f"nsd_mode must be one of {NSD_MODES}, got {nsd_mode!r}")
    if lesion_scores not in LESION_SCORES:
        raise MetricInputError(f"lesion_scores must be one of {LESION_SCORES}, got {lesion_scores!r}")
    if precision not in PRECISION_RULES:
        raise MetricInputError(f"precision must be one of {PRECISION_RULES}, got {precision!r}")
    tolerance_mm = check_tolerance(tolerance_mm, error=MetricInputError)
    is_2d = gt.ndim == 2
    if not oversize_ml > 0:
        raise MetricInputError(f"oversize_ml must be > 0 mL, got {oversize_ml!r}")
    params = LesionParams(tuple(sp[:gt.ndim]), conn, hit, tolerance_mm, nsd_mode, float(large_lesion_ml),
                          None if threshold is None else float(threshold), lesion_scores, precision, float(oversize_ml))
    voxel_ml = sp[0] * sp[1] * sp[2] / 1000.0
    large_voxels = large_lesion_ml / voxel_ml * (1 - _REL_TOL)

    gt_xyz, _ = C.foreground(gt, name="gt_mask")
    pred_xyz, pred_values = C.foreground(pred, threshold=float(threshold) if is_prob else None,
                                         name="prob_map" if is_prob else "pred_mask")
    bone = None if skel is None else skel[gt_xyz[:, 0], gt_xyz[:, 1], gt_xyz[:, 2]].astype(np.int64)
    gt_values = C._as_3d(gt)[gt_xyz[:, 0], gt_xyz[:, 1], gt_xyz[:, 2]]
    instance_labels = gt_values.size > 0 and gt_values.min() != gt_values.max()  # not one value for all lesions
    n_mixed = 0
    shape3 = C._as_3d(gt).shape
    pad = _pad_voxels(float(tolerance_mm), sp)
    if is_2d:
        pad[2] = 0

    lesion_rows: list[dict[str, Any]] = []
    pred_rows: list[dict[str, Any]] = []
    inter_total = 0
    for region in C.regions(gt_xyz, pred_xyz, shape3, pad=pad):
        g_lab, n_g = C.label(region.scatter(gt_xyz, region.gt_index), conn)
        p_lab, n_p = C.label(region.scatter(pred_xyz, region.pred_index), conn)
        g_stats = component_stats(g_lab) if n_g else None
        p_stats = component_stats(p_lab) if n_p else None
        g_sizes = g_stats.voxel_counts if n_g else np.zeros(1, np.int64)
        p_sizes = p_stats.voxel_counts if n_p else np.zeros(1, np.int64)
        gid, pid, inter = overlaps(g_lab, p_lab)
        inter_total += int(inter.sum())
        matched, pred_hit = match(n_g, n_p, g_sizes, p_sizes, gid, pid, inter, rule)
        g_offset, p_offset = len(lesion_rows), len(pred_rows)
        local = gt_xyz[region.gt_index] - region.lo
        bone_of = _bone_of(g_lab, n_g, local, None if bone is None else bone[region.gt_index])
        if instance_labels and n_g:
            n_mixed += _mixed_components(g_lab, n_g, local, gt_values[region.gt_index])
        max_prob = None
        if is_prob and n_p:
            prob_crop = region.scatter(pred_xyz, region.pred_index, pred_values, dtype=pred_values.dtype)
            max_prob = np.zeros(n_p + 1, dtype=np.float64)
            np.maximum.at(max_prob, p_lab.ravel(), prob_crop.ravel())
        credited: list[list[int]] = [[] for _ in range(n_p + 1)]
        for g in range(1, n_g + 1):
            for p in matched[g]:
                credited[p].append(g)
            dice_v = iou_v = nsd_v = 0.0
            if matched[g]:
                sl = _score_box(g, matched[g], g_stats, p_stats, pad if lesion_scores == "box" else None,
                                region.shape)
                g_box = g_lab[sl] == g
                p_box = np.isin(p_lab[sl], matched[g])
                n_inter = int(np.count_nonzero(g_box & p_box))
                n_gb, n_pb = int(g_sizes[g]), int(np.count_nonzero(p_box))
                dice_v = _dice_from_counts(n_inter, n_gb, n_pb)
                iou_v = _iou_from_counts(n_inter, n_gb, n_pb)
                if is_2d:
                    g_box, p_box = g_box[..., 0], p_box[..., 0]
                nsd_v = _surface_dice_of_boxes(g_box, p_box, sp[:2] if is_2d else sp, float(tolerance_mm), nsd_mode)
            centroid = g_stats.centroids[g] + region.lo
            bl = int(bone_of[g])
            lesion_rows.append({
                "scan_id": scan_id, "lesion_id": g_offset + g, "n_voxels": int(g_sizes[g]),
                "volume_ml": int(g_sizes[g]) * voxel_ml, "large": bool(g_sizes[g] >= large_voxels),
                "bone_label": bl if skel is not None else -1,
                "bone_region": (SKELETON_CLASSES.get(bl, str(bl)) if bl else "unlabelled") if skel is not None else "",
                "detected": bool(matched[g]), "dice": dice_v, "iou": iou_v, "nsd": nsd_v,
                "matched_pred_ids": ";".join(str(p_offset + p) for p in matched[g]),
                "centroid_x_vox": float(centroid[0]), "centroid_y_vox": float(centroid[1]),
                "centroid_z_vox": float(centroid[2]),
            })
        for p in range(1, n_p + 1):
            centroid = p_stats.centroids[p] + region.lo
            pred_rows.append({
                "scan_id": scan_id, "pred_id": p_offset + p, "n_voxels": int(p_sizes[p]),
                "volume_ml": int(p_sizes[p]) * voxel_ml, "large": bool(p_sizes[p] >= large_voxels),
                "false_positive": not bool(pred_hit[p]),
                "max_prob": float(max_prob[p]) if max_prob is not None else float("nan"),
                "matched_lesion_ids": ";".join(str(g_offset + g) for g in credited[p]),
                "merges_lesions": len(credited[p]) >= 2, "oversized": bool(p_sizes[p] * voxel_ml > oversize_ml),
                "centroid_x_vox": float(centroid[0]), "centroid_y_vox": float(centroid[1]),
                "centroid_z_vox": float(centroid[2]),
            })
    if n_mixed:
        _warn_merged(n_mixed, len(np.unique(gt_values)), scan_id)
    n_gt_vox, n_pred_vox = gt_xyz.shape[0], pred_xyz.shape[0]
    summary = _summarise(lesion_rows, pred_rows, scan_id=scan_id,
                         global_dice=_dice_from_counts(inter_total, n_gt_vox, n_pred_vox),
                         gt_volume_ml=n_gt_vox * voxel_ml, pred_volume_ml=n_pred_vox * voxel_ml, precision=precision)
    return LesionReport(tuple(lesion_rows), tuple(pred_rows), summary, params)

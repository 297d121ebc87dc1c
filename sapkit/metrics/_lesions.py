"""Lesion-wise evaluation of one case: components, matching, per-lesion Dice/NSD, patient summary.

Definitions (SPEC §6, pinned by tests)
--------------------------------------
- Lesions are connected components (connectivity 6, 18 or 26; default 26) of the binary masks.
- Hit rule ``"any"`` (default, the paper's): a GT lesion is detected when any predicted
  component overlaps it by ≥ 1 voxel; every overlapping component is credited to it.
  ``"iou:T"``: one-to-one matching of pairs with IoU ≥ T, greedily by decreasing IoU.
- A prediction credited to no GT lesion is a false positive (FP); FP per exam counts them.
- A detected lesion's Dice, IoU and NSD are computed against the union of its credited
  predictions, inside the lesion's bounding box padded by ``ceil(τ / spacing) + 1`` voxels;
  missed lesions get Dice 0, IoU 0 and NSD 0.
- Sensitivity = TP / (TP + FN) (NaN without GT lesions); precision = TP / (TP + FP) with TP the
  detected GT lesions (NaN when there is neither a TP nor an FP); F2 = 5PR / (4P + R) =
  5TP / (5TP + 4FN + FP), defined as 0 when P = R = 0 and NaN only when TP = FN = FP = 0.
- Volume in mL = voxel count × voxel volume (mm³) / 1000; "large" lesions have volume ≥
  ``large_lesion_ml`` (1 mL), compared with a relative tolerance of 1e-9 against rounding.
- ≥ 1 mL sensitivity is NaN for patients without large lesions; ≥ 1 mL FP counts predicted
  components ≥ 1 mL credited to no GT lesion.
- Global Dice treats all lesions as one foreground (NaN when both masks are empty).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import cc3d
import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.errors import MetricInputError
from sapkit.labels.label_maps import SKELETON_CLASSES
from sapkit.metrics import _components as C
from sapkit.metrics._surface import NSD_MODES, _surface_dice_of_boxes

__all__ = [
    "LESION_COLUMNS",
    "PREDICTION_COLUMNS",
    "LesionParams",
    "PatientSummary",
    "LesionReport",
    "f_beta",
    "lesion_report",
    "lesion_counts_by_threshold",
]

LESION_COLUMNS = (
    "patient_id", "lesion_id", "n_voxels", "volume_ml", "large", "bone_label", "bone_region",
    "detected", "dice", "iou", "nsd", "matched_pred_ids", "centroid_x_vox", "centroid_y_vox", "centroid_z_vox",
)
PREDICTION_COLUMNS = (
    "patient_id", "pred_id", "n_voxels", "volume_ml", "large", "false_positive", "max_prob",
    "matched_lesion_ids", "centroid_x_vox", "centroid_y_vox", "centroid_z_vox",
)
_REL_TOL = 1e-9


def f_beta(precision: float, recall: float, *, beta: float = 2.0) -> float:
    """F-beta score ``(1 + β²)PR / (β²P + R)``; 0 when P = R = 0, NaN if either is NaN.

    Examples
    --------
    >>> round(f_beta(0.5, 1.0), 4), round(f_beta(1.0, 0.5), 4), f_beta(0.0, 0.0)
    (0.8333, 0.5556, 0.0)
    """
    p, r = float(precision), float(recall)
    if math.isnan(p) or math.isnan(r):
        return float("nan")
    b2 = beta * beta
    denominator = b2 * p + r
    return 0.0 if denominator == 0 else (1 + b2) * p * r / denominator


def _ratio(num: float, den: float) -> float:
    return float("nan") if den == 0 else float(num) / float(den)


def _f2_counts(tp: int, fn: int, fp: int) -> float:
    return _ratio(5 * tp, 5 * tp + 4 * fn + fp)


@dataclass(frozen=True)
class LesionParams:
    """Parameters of a lesion-wise evaluation (reported next to every result)."""

    spacing_mm: tuple[float, ...]
    connectivity: int = 26
    hit: str = "any"
    tolerance_mm: float = 2.0
    nsd_mode: str = "surface"
    large_lesion_ml: float = 1.0
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) for JSON."""
        d = dataclasses.asdict(self)
        d["spacing_mm"] = list(self.spacing_mm)
        return d


@dataclass(frozen=True)
class PatientSummary:
    """Patient-level (one case) lesion-wise results. Volumes in mL."""

    patient_id: str
    n_lesions: int
    n_large_lesions: int
    n_predictions: int
    tp: int
    fn: int
    fp: int
    sensitivity: float
    precision: float
    f2: float
    tp_large: int
    sensitivity_large: float
    fp_large: int
    dice_mean: float
    dice_detected: float
    nsd_detected: float
    global_dice: float
    gt_volume_ml: float
    pred_volume_ml: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (one row of ``patients.csv``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LesionReport:
    """Everything the lesion-wise evaluation of one case produces.

    Attributes
    ----------
    lesions : DataFrame
        One row per GT lesion, columns :data:`LESION_COLUMNS`.
    predictions : DataFrame
        One row per predicted component, columns :data:`PREDICTION_COLUMNS`.
    patient : PatientSummary
    params : LesionParams
    """

    lesions: pd.DataFrame
    predictions: pd.DataFrame
    patient: PatientSummary
    params: LesionParams

    def __repr__(self) -> str:
        p = self.patient
        return (f"LesionReport(patient: {p.patient_id!r}; lesions: {p.n_lesions}; TP {p.tp} FN {p.fn} FP {p.fp}; "
                f"F2 {p.f2:.3f}; hit: {self.params.hit}; connectivity: {self.params.connectivity})")


def _check_inputs(gt_mask: npt.ArrayLike, pred_mask: npt.ArrayLike | None, prob_map: npt.ArrayLike | None,
                  threshold: float | None, spacing_mm: Sequence[float], skeleton: npt.ArrayLike | None,
                  ) -> tuple[np.ndarray, np.ndarray, bool, tuple[float, float, float], np.ndarray | None]:
    gt = np.asarray(gt_mask)
    if (pred_mask is None) == (prob_map is None):
        raise MetricInputError("give exactly one of pred_mask= (binary) or prob_map= with threshold=")
    if prob_map is not None:
        pred = np.asarray(prob_map)
        if threshold is None or not (0 < float(threshold) <= 1):
            raise MetricInputError(f"threshold must be in (0, 1] when prob_map is given, got {threshold!r}")
    else:
        pred = np.asarray(pred_mask)
    if gt.ndim not in (2, 3):
        raise MetricInputError(f"gt_mask must be a 2D or 3D array, got shape {gt.shape}")
    if pred.shape != gt.shape:
        raise MetricInputError(
            f"prediction shape {pred.shape} ≠ gt_mask shape {gt.shape}; resample the prediction onto the GT grid"
        )
    sp = C.check_spacing(spacing_mm, gt.ndim)
    skel = None
    if skeleton is not None:
        skel = C._as_3d(np.asarray(skeleton))
        if skel.shape != C._as_3d(gt).shape:
            raise MetricInputError(f"skeleton shape {np.shape(skeleton)} ≠ gt_mask shape {gt.shape}; resample it first")
    return gt, pred, prob_map is not None, sp, skel


def _pad_voxels(tolerance_mm: float, spacing: Sequence[float]) -> np.ndarray:
    return np.array([int(math.ceil(tolerance_mm / s)) + 1 for s in spacing], dtype=np.int64)


def lesion_report(
    gt_mask: npt.ArrayLike,
    pred_mask: npt.ArrayLike | None = None,
    *,
    spacing_mm: Sequence[float],
    prob_map: npt.ArrayLike | None = None,
    threshold: float | None = None,
    connectivity: int = 26,
    hit: str = "any",
    tolerance_mm: float = 2.0,
    nsd_mode: str = "surface",
    skeleton: npt.ArrayLike | None = None,
    large_lesion_ml: float = 1.0,
    patient_id: str = "",
) -> LesionReport:
    """Lesion-wise evaluation of one case (SPEC §6).

    Only the non-empty parts of the volume are labelled: the foreground is located in one pass
    over the masks' bytes and each group of nearby voxels is labelled in its own small crop.

    Parameters
    ----------
    gt_mask : (X, Y, Z) or (X, Y) array of bool or int
        Ground-truth lesion mask; any non-zero value is lesion.
    pred_mask : array of bool or int, optional
        Binary prediction on the same grid (or give ``prob_map`` and ``threshold``).
    spacing_mm : sequence of float
        Voxel size per axis in mm.
    prob_map : (X, Y, Z) float16/float32 in [0, 1], optional
        Lesion probability; the prediction is ``prob_map >= threshold``.
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
    patient_id : str
        Written into every table row.

    Returns
    -------
    LesionReport

    Raises
    ------
    MetricInputError
        Shapes differ, spacing is not one positive value per axis, a probability map holds
        values outside [0, 1], or an option is out of range.

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
    conn = C.check_connectivity(connectivity)
    rule = C.parse_hit(hit)
    if nsd_mode not in NSD_MODES:
        raise MetricInputError(f"nsd_mode must be one of {NSD_MODES}, got {nsd_mode!r}")
    if not (math.isfinite(float(tolerance_mm)) and tolerance_mm >= 0):
        raise MetricInputError(f"tolerance_mm must be ≥ 0, got {tolerance_mm!r}")
    is_2d = gt.ndim == 2
    params = LesionParams(tuple(sp[:gt.ndim]), conn, hit, float(tolerance_mm), nsd_mode, float(large_lesion_ml),
                          None if threshold is None else float(threshold))
    voxel_ml = sp[0] * sp[1] * sp[2] / 1000.0
    large_voxels = large_lesion_ml / voxel_ml * (1 - _REL_TOL)

    gt_xyz, _ = C.foreground(gt, name="gt_mask")
    pred_xyz, pred_values = C.foreground(pred, threshold=float(threshold) if is_prob else None,
                                         name="prob_map" if is_prob else "pred_mask")
    bone = None if skel is None else skel[gt_xyz[:, 0], gt_xyz[:, 1], gt_xyz[:, 2]].astype(np.int64)
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
        g_stats = cc3d.statistics(g_lab, no_slice_conversion=True) if n_g else None
        p_stats = cc3d.statistics(p_lab, no_slice_conversion=True) if n_p else None
        g_sizes = g_stats["voxel_counts"].astype(np.int64) if n_g else np.zeros(1, np.int64)
        p_sizes = p_stats["voxel_counts"].astype(np.int64) if n_p else np.zeros(1, np.int64)
        gid, pid, inter = C.overlaps(g_lab, p_lab)
        inter_total += int(inter.sum())
        matched, pred_hit = C.match(n_g, n_p, g_sizes, p_sizes, gid, pid, inter, rule)
        g_offset, p_offset = len(lesion_rows), len(pred_rows)
        # bone region: majority non-zero skeleton class over the lesion's voxels
        bone_of = np.zeros(n_g + 1, dtype=np.int64)
        if bone is not None and n_g:
            local = gt_xyz[region.gt_index] - region.lo
            ids = g_lab[local[:, 0], local[:, 1], local[:, 2]].astype(np.int64)
            b = bone[region.gt_index]
            keep = b > 0
            if keep.any():
                n_cls = int(b.max()) + 1
                votes = np.bincount(ids[keep] * n_cls + b[keep], minlength=(n_g + 1) * n_cls).reshape(n_g + 1, n_cls)
                has = votes.sum(axis=1) > 0
                bone_of[has] = votes[has].argmax(axis=1)
        max_prob = None
        if is_prob and n_p:
            prob_crop = region.scatter(pred_xyz, region.pred_index, pred_values, dtype=np.float32)
            max_prob = np.zeros(n_p + 1, dtype=np.float64)
            np.maximum.at(max_prob, p_lab.ravel(), prob_crop.ravel())
        credited: list[list[int]] = [[] for _ in range(n_p + 1)]
        for g in range(1, n_g + 1):
            for p in matched[g]:
                credited[p].append(g)
            box = g_stats["bounding_boxes"][g]  # xmin, xmax, ymin, ymax, zmin, zmax (inclusive)
            lo = np.maximum(np.array([box[0], box[2], box[4]]) - pad, 0)
            hi = np.minimum(np.array([box[1], box[3], box[5]]) + pad + 1, region.shape)
            sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
            dice_v = iou_v = nsd_v = 0.0
            if matched[g]:
                g_box = g_lab[sl] == g
                p_box = np.isin(p_lab[sl], matched[g])
                n_inter = int(np.count_nonzero(g_box & p_box))
                n_gb, n_pb = int(g_sizes[g]), int(np.count_nonzero(p_box))
                dice_v = 2.0 * n_inter / (n_gb + n_pb)
                iou_v = n_inter / (n_gb + n_pb - n_inter)
                if is_2d:
                    g_box, p_box = g_box[..., 0], p_box[..., 0]
                nsd_v = _surface_dice_of_boxes(g_box, p_box, sp[:2] if is_2d else sp, float(tolerance_mm), nsd_mode)
            centroid = g_stats["centroids"][g] + region.lo
            bl = int(bone_of[g])
            lesion_rows.append({
                "patient_id": patient_id, "lesion_id": g_offset + g, "n_voxels": int(g_sizes[g]),
                "volume_ml": int(g_sizes[g]) * voxel_ml, "large": bool(g_sizes[g] >= large_voxels),
                "bone_label": bl if skel is not None else -1,
                "bone_region": (SKELETON_CLASSES.get(bl, str(bl)) if bl else "unlabelled") if skel is not None else "",
                "detected": bool(matched[g]), "dice": dice_v, "iou": iou_v, "nsd": nsd_v,
                "matched_pred_ids": ";".join(str(p_offset + p) for p in matched[g]),
                "centroid_x_vox": float(centroid[0]), "centroid_y_vox": float(centroid[1]),
                "centroid_z_vox": float(centroid[2]),
            })
        for p in range(1, n_p + 1):
            centroid = p_stats["centroids"][p] + region.lo
            pred_rows.append({
                "patient_id": patient_id, "pred_id": p_offset + p, "n_voxels": int(p_sizes[p]),
                "volume_ml": int(p_sizes[p]) * voxel_ml, "large": bool(p_sizes[p] >= large_voxels),
                "false_positive": not bool(pred_hit[p]),
                "max_prob": float(max_prob[p]) if max_prob is not None else float("nan"),
                "matched_lesion_ids": ";".join(str(g_offset + g) for g in credited[p]),
                "centroid_x_vox": float(centroid[0]), "centroid_y_vox": float(centroid[1]),
                "centroid_z_vox": float(centroid[2]),
            })
    lesions = _frame(lesion_rows, LESION_COLUMNS)
    preds = _frame(pred_rows, PREDICTION_COLUMNS)
    n_gt_vox, n_pred_vox = gt_xyz.shape[0], pred_xyz.shape[0]
    summary = _summarise(lesions, preds, patient_id=patient_id,
                         global_dice=_ratio(2 * inter_total, n_gt_vox + n_pred_vox),
                         gt_volume_ml=n_gt_vox * voxel_ml, pred_volume_ml=n_pred_vox * voxel_ml)
    return LesionReport(lesions, preds, summary, params)


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    if not rows:  # keep the dtypes of an empty table meaningful
        for col in columns:
            if col in ("detected", "large", "false_positive"):
                frame[col] = frame[col].astype(bool)
            elif col in ("n_voxels", "lesion_id", "pred_id", "bone_label"):
                frame[col] = frame[col].astype(np.int64)
            elif col not in ("patient_id", "bone_region", "matched_pred_ids", "matched_lesion_ids"):
                frame[col] = frame[col].astype(np.float64)
    return frame


def _summarise(lesions: pd.DataFrame, preds: pd.DataFrame, *, patient_id: str, global_dice: float,
               gt_volume_ml: float, pred_volume_ml: float) -> PatientSummary:
    n = len(lesions)
    tp = int(lesions["detected"].sum())
    fn = n - tp
    fp = int(preds["false_positive"].sum())
    large = lesions["large"].to_numpy(bool)
    n_large = int(large.sum())
    tp_large = int(lesions["detected"].to_numpy(bool)[large].sum())
    fp_large = int((preds["false_positive"] & preds["large"]).sum())
    detected = lesions[lesions["detected"]]
    return PatientSummary(
        patient_id=patient_id, n_lesions=n, n_large_lesions=n_large, n_predictions=len(preds),
        tp=tp, fn=fn, fp=fp, sensitivity=_ratio(tp, n), precision=_ratio(tp, tp + fp),
        f2=_f2_counts(tp, fn, fp), tp_large=tp_large, sensitivity_large=_ratio(tp_large, n_large),
        fp_large=fp_large, dice_mean=float(lesions["dice"].mean()) if n else float("nan"),
        dice_detected=float(detected["dice"].mean()) if tp else float("nan"),
        nsd_detected=float(detected["nsd"].mean()) if tp else float("nan"),
        global_dice=global_dice, gt_volume_ml=gt_volume_ml, pred_volume_ml=pred_volume_ml,
    )


def lesion_counts_by_threshold(
    gt_mask: npt.ArrayLike,
    prob_map: npt.ArrayLike,
    *,
    spacing_mm: Sequence[float],
    thresholds: Sequence[float],
    connectivity: int = 26,
    hit: str = "any",
    large_lesion_ml: float = 1.0,
    patient_id: str = "",
) -> pd.DataFrame:
    """Detection counts of one case at every threshold of a grid (for FROC and threshold tuning).

    The foreground is located once at the lowest threshold; each higher threshold only
    re-labels the small crops (a prediction at ``t`` is a subset of the one at ``t_min``).

    Parameters
    ----------
    gt_mask : (X, Y, Z) array of bool or int
    prob_map : (X, Y, Z) float array in [0, 1]
    spacing_mm : sequence of float
        Voxel size in mm (volumes for the ≥ 1 mL subset).
    thresholds : sequence of float
        Each in (0, 1].
    connectivity, hit, large_lesion_ml, patient_id
        As in :func:`lesion_report`.

    Returns
    -------
    DataFrame
        One row per threshold: ``patient_id, threshold, n_lesions, n_large_lesions, n_predictions,
        tp, fn, fp, tp_large, fp_large, sensitivity, precision, f2`` — identical to the
        :func:`lesion_report` counts at that threshold.
    """
    ts = sorted({float(t) for t in thresholds})
    if not ts or ts[0] <= 0 or ts[-1] > 1:
        raise MetricInputError(f"thresholds must be a non-empty list of values in (0, 1], got {list(thresholds)!r}")
    gt, prob, _, sp, _ = _check_inputs(gt_mask, None, prob_map, ts[0], spacing_mm, None)
    conn = C.check_connectivity(connectivity)
    rule = C.parse_hit(hit)
    voxel_ml = sp[0] * sp[1] * sp[2] / 1000.0
    large_voxels = large_lesion_ml / voxel_ml * (1 - _REL_TOL)
    gt_xyz, _ = C.foreground(gt, name="gt_mask")
    pred_xyz, values = C.foreground(prob, threshold=ts[0], name="prob_map")
    keys = ("n_lesions", "n_large_lesions", "n_predictions", "tp", "fp", "tp_large", "fp_large")
    totals = {t: dict.fromkeys(keys, 0) for t in ts}
    for region in C.regions(gt_xyz, pred_xyz, C._as_3d(gt).shape, pad=(1, 1, 1)):
        g_lab, n_g = C.label(region.scatter(gt_xyz, region.gt_index), conn)
        g_sizes = np.bincount(g_lab.ravel(), minlength=n_g + 1).astype(np.int64)
        g_large = g_sizes >= large_voxels
        g_large[0] = False
        prob_crop = region.scatter(pred_xyz, region.pred_index, values, dtype=np.float32)
        for t in ts:
            p_lab, n_p = C.label(prob_crop >= t, conn)
            p_sizes = np.bincount(p_lab.ravel(), minlength=n_p + 1).astype(np.int64)
            gid, pid, inter = C.overlaps(g_lab, p_lab)
            matched, pred_hit = C.match(n_g, n_p, g_sizes, p_sizes, gid, pid, inter, rule)
            detected = np.array([bool(m) for m in matched])
            fp_mask = ~pred_hit
            fp_mask[0] = False
            row = totals[t]
            row["n_lesions"] += n_g
            row["n_large_lesions"] += int(g_large.sum())
            row["n_predictions"] += n_p
            row["tp"] += int(detected[1:].sum())
            row["tp_large"] += int((detected & g_large).sum())
            row["fp"] += int(fp_mask.sum())
            row["fp_large"] += int((fp_mask & (p_sizes >= large_voxels)).sum())
    rows = []
    for t in ts:
        r = totals[t]
        fn = r["n_lesions"] - r["tp"]
        rows.append({"patient_id": patient_id, "threshold": t, **r, "fn": fn,
                     "sensitivity": _ratio(r["tp"], r["n_lesions"]), "precision": _ratio(r["tp"], r["tp"] + r["fp"]),
                     "f2": _f2_counts(r["tp"], fn, r["fp"])})
    cols = ["patient_id", "threshold", "n_lesions", "n_large_lesions", "n_predictions", "tp", "fn", "fp",
            "tp_large", "fp_large", "sensitivity", "precision", "f2"]
    return pd.DataFrame(rows, columns=cols)


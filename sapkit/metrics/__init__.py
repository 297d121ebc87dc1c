"""Evaluation metrics of one scan: voxel overlap, surface distances/NSD, lesion-wise detection, FROC, tuning.

Every definition, its default and its alternatives are in ``docs/metrics.md``. Submodules
(private, their public names re-exported here):

- ``_overlap``: Dice and IoU of masks, Dice per class and per group of labels (§8.3, §13).
- ``_binarise``: the one threshold rule, ``prob >= t`` in the map's dtype (§2).
- ``_surface_area``: marching-cubes area of each surface element (§9).
- ``_surface``: surface distances, NSD (surface-element or boundary-voxel), Hausdorff (§9).
- ``_components``: sparse foreground and crop-wise connected components (§3).
- ``_lesion_matching``: overlapping component pairs and the hit rules (§4).
- ``_lesion_tables``: lesion/prediction/count table columns, the per-scan summary, F-beta (§5–§7).
- ``_lesion_report``: lesion-wise evaluation of one scan (§3–§8).
- ``_lesion_counts``: detection counts at every threshold of a grid (§10–§11).
- ``_froc``: FROC curve and its unnormalised area (§10).
- ``_threshold``: probability threshold that maximises the median (or mean) patient F2 (§11).
"""

from __future__ import annotations

from sapkit.metrics._binarise import threshold_in_dtype, threshold_mask
from sapkit.metrics._froc import FrocCurve, froc_auc, froc_curve
from sapkit.metrics._lesion_counts import lesion_counts_by_threshold
from sapkit.metrics._lesion_report import LESION_SCORES, lesion_report
from sapkit.metrics._lesion_tables import (
    CENTROID_COLUMNS,
    COUNT_COLUMNS,
    LESION_COLUMNS,
    LESION_ID_COLUMNS,
    OVERSIZE_ML,
    PRECISION_RULES,
    PREDICTION_COLUMNS,
    LesionParams,
    LesionReport,
    PatientSummary,
    detection_ratios,
    f_beta,
)
from sapkit.metrics._overlap import dice, dice_per_class, dice_per_group, iou
from sapkit.metrics._surface import (
    NSD_MODES,
    SurfaceDistances,
    average_surface_distance,
    compute_surface_distances,
    hausdorff_distance,
    normalized_surface_dice,
    surface_dice,
    surface_overlap,
)
from sapkit.metrics._surface_area import surface_area_table
from sapkit.metrics._threshold import ThresholdChoice, extended_grid, grid_edge, tune_threshold

__all__ = [
    "dice",
    "iou",
    "dice_per_class",
    "dice_per_group",
    "NSD_MODES",
    "SurfaceDistances",
    "compute_surface_distances",
    "average_surface_distance",
    "hausdorff_distance",
    "surface_overlap",
    "surface_dice",
    "normalized_surface_dice",
    "surface_area_table",
    "LESION_ID_COLUMNS",
    "CENTROID_COLUMNS",
    "LESION_COLUMNS",
    "PREDICTION_COLUMNS",
    "COUNT_COLUMNS",
    "LesionParams",
    "LesionReport",
    "PatientSummary",
    "f_beta",
    "detection_ratios",
    "OVERSIZE_ML",
    "PRECISION_RULES",
    "LESION_SCORES",
    "lesion_report",
    "threshold_in_dtype",
    "threshold_mask",
    "lesion_counts_by_threshold",
    "FrocCurve",
    "froc_curve",
    "froc_auc",
    "ThresholdChoice",
    "tune_threshold",
    "grid_edge",
    "extended_grid",
]

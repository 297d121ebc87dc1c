"""Evaluation metrics: voxel overlap, surface distances/NSD, lesion-wise detection, FROC, tuning.

Submodules (private, re-exported here):

- ``_surface``: Dice, surface distances, NSD (surface-element or boundary-voxel), Hausdorff.
- ``_lesions``: connected components, hit rules, per-lesion / per-prediction / per-patient tables.
- ``_froc``: FROC curve and its unnormalised area (SPEC §6).
- ``_threshold``: probability threshold that maximises the median (or mean) patient F2.
"""

from __future__ import annotations

from sapkit.metrics._froc import FrocCurve, froc_auc, froc_curve
from sapkit.metrics._lesions import (
    LESION_COLUMNS,
    PREDICTION_COLUMNS,
    LesionParams,
    LesionReport,
    PatientSummary,
    f_beta,
    lesion_counts_by_threshold,
    lesion_report,
)
from sapkit.metrics._surface import (
    SurfaceDistances,
    average_surface_distance,
    compute_surface_distances,
    dice,
    dice_per_class,
    hausdorff_distance,
    normalized_surface_dice,
    surface_area_table,
    surface_dice,
    surface_overlap,
)
from sapkit.metrics._threshold import ThresholdChoice, tune_threshold

__all__ = [
    "SurfaceDistances",
    "dice",
    "dice_per_class",
    "compute_surface_distances",
    "average_surface_distance",
    "hausdorff_distance",
    "surface_overlap",
    "surface_dice",
    "normalized_surface_dice",
    "surface_area_table",
    "LESION_COLUMNS",
    "PREDICTION_COLUMNS",
    "LesionParams",
    "LesionReport",
    "PatientSummary",
    "f_beta",
    "lesion_report",
    "lesion_counts_by_threshold",
    "FrocCurve",
    "froc_curve",
    "froc_auc",
    "ThresholdChoice",
    "tune_threshold",
]

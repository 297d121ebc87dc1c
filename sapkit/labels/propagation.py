"""Label propagation between scans of one subject: global rigid, then per-bone rigid (SimpleITK).

The paper's healthy labels were drawn on one scan per subject and carried to the subject's
other scans by bone-wise (piecewise rigid) registration. Here: (1) a global rigid registration
of the T1 images (Mattes mutual information — repeat scans may come from different sites);
(2) for every bone group, a rigid refinement started from the global result, whose metric
(correlation) only samples a dilated mask of that bone in the labelled scan; (3) each group's
labels are warped with its own transform, nearest neighbour. Transforms map target (fixed)
points to the labelled (moving) scan, as in ITK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from sapkit.errors import LabelError
from sapkit.imaging.components import label_components
from sapkit.imaging.resample import resample, to_sitk
from sapkit.io.atomic import atomic_write_text
from sapkit.io.run_paths import RunDir
from sapkit.label_maps import SKELETON_CLASSES
from sapkit.labels.mapping import fine_to_skeleton
from sapkit.metrics import dice_per_group

__all__ = ["FINE_BONE_GROUPS", "SKELETON_BONE_GROUPS", "PropagationResult", "register_rigid", "propagate_labels",
           "per_bone_dice", "propagation_dice_table"]

#: Bone groups (name → fine-atlas labels) refined separately for fine-atlas maps.
FINE_BONE_GROUPS: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "cervical spine": tuple(range(1, 8)), "thoracic spine": tuple(range(8, 20)), "lumbar spine": tuple(range(20, 26)),
    "femur L": (26,), "femur R": (27,), "hip bone L": (28,), "hip bone R": (29,), "humerus L": (30,),
    "humerus R": (31,), "scapula L": (32,), "scapula R": (33,), "clavicle L": (34,), "clavicle R": (35,),
    "sternum": (36,), "ribs": tuple(range(37, 61)),
})
#: Bone groups for 10-class SAP maps: one per class; left/right pieces are split into components.
SKELETON_BONE_GROUPS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {name: (k,) for k, name in SKELETON_CLASSES.items() if k != 0})


@dataclass(frozen=True)
class PropagationResult:
    """Labels carried onto the target grid.

    Attributes
    ----------
    label_map : (X, Y, Z) int16
        After per-bone refinement.
    global_label_map : (X, Y, Z) int16
        After the global rigid registration only.
    metric_values : dict
        Final metric value per stage ('global', then one entry per refined piece).
    """

    label_map: npt.NDArray[np.int16]
    global_label_map: npt.NDArray[np.int16]
    metric_values: dict = field(default_factory=dict)


def _method(metric: str, shrink: tuple[int, ...], iterations: int, seed: int, sampling: float) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    if sampling < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(sampling, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=iterations,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel([max(s - 1, 0) for s in shrink])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetNumberOfThreads(2)
    return reg


def register_rigid(fixed: sitk.Image, moving: sitk.Image, *, initial: sitk.Transform | None = None,
                   moving_mask: sitk.Image | None = None, metric: str = "mattes", shrink: tuple[int, ...] = (4, 2, 1),
                   iterations: int = 120, seed: int = 42, sampling: float = 0.25) -> tuple[sitk.Euler3DTransform, float]:
    """Rigid (Euler 3D) registration of ``moving`` onto ``fixed``.

    Returns
    -------
    transform : Euler3DTransform
        Maps fixed-space points (mm) to moving-space points.
    metric_value : float
        Final metric value (lower is better for both metrics).
    """
    if initial is None:
        initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                    sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = _method(metric, shrink, iterations, seed, sampling)
    reg.SetInitialTransform(sitk.Euler3DTransform(initial), inPlace=False)
    if moving_mask is not None:
        reg.SetMetricMovingMask(moving_mask)
    out = reg.Execute(fixed, moving)
    tx = sitk.Euler3DTransform(sitk.CompositeTransform(out).GetNthTransform(0)) if out.GetName() == "CompositeTransform" \
        else sitk.Euler3DTransform(out)
    return tx, float(reg.GetMetricValue())


def _recentred(tx: sitk.Euler3DTransform, centre_mm) -> sitk.Euler3DTransform:
    """The same mapping as ``tx`` with its rotation centre moved to ``centre_mm``."""
    new = sitk.Euler3DTransform()
    new.SetCenter(tuple(float(c) for c in centre_mm))
    new.SetMatrix(tx.GetMatrix())
    mapped = np.asarray(tx.TransformPoint(tuple(float(c) for c in centre_mm)))
    new.SetTranslation(tuple(mapped - np.asarray(centre_mm)))
    return new


def _crop(img: sitk.Image, lo_idx, hi_idx) -> sitk.Image:
    size = [int(h - l) for l, h in zip(lo_idx, hi_idx)]
    return sitk.RegionOfInterest(img, size, [int(v) for v in lo_idx])


def _box(mask: np.ndarray, margin: int):
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return lo, hi


def _refine_piece(piece, init, m_img, f_img, m_aff, fixed_shape, *, dilate_vox: int, shrink, sampling: float,
                  margin_vox: int, seed: int) -> tuple[sitk.Euler3DTransform, float]:
    """One rigid refinement of one bone piece on cropped images; keeps ``init`` if ITK fails."""
    mask = ndimage.binary_dilation(piece, iterations=dilate_vox)
    lo, hi = _box(mask, 1)
    m_crop = _crop(m_img, lo, hi)
    mask_img = _crop(to_sitk(mask.astype(np.uint8), m_aff), lo, hi)
    centre = m_aff[:3, :3] @ np.argwhere(piece).mean(axis=0) + m_aff[:3, 3]
    centre_f = np.asarray(init.GetInverse().TransformPoint(tuple(float(c) for c in centre)))
    f_idx = np.asarray(f_img.TransformPhysicalPointToContinuousIndex(tuple(float(c) for c in centre_f)))
    half = (hi - lo) / 2 + margin_vox
    f_lo = np.maximum(np.floor(f_idx - half), 0).astype(int)
    f_hi = np.minimum(np.ceil(f_idx + half), fixed_shape).astype(int)
    start = _recentred(init, centre_f)
    if np.any(f_hi - f_lo < 4):
        return start, float("nan")
    try:
        return register_rigid(_crop(f_img, f_lo, f_hi), m_crop, initial=start, moving_mask=mask_img,
                              metric="correlation", shrink=tuple(shrink), iterations=80, sampling=sampling, seed=seed)
    except RuntimeError:  # too few samples in the overlap
        return start, float("nan")


def propagate_labels(
    moving_image: npt.ArrayLike, moving_label: npt.ArrayLike, fixed_image: npt.ArrayLike, *,
    moving_affine: npt.ArrayLike, fixed_affine: npt.ArrayLike, groups: Mapping[str, tuple[int, ...]] | None = None,
    refine: bool = True, dilate_mm: float = 6.0, coarse_dilate_mm: float = 25.0, split_components: bool | None = None,
    min_voxels: int = 20, seed: int = 42,
) -> PropagationResult:
    """Carry ``moving_label`` (drawn on ``moving_image``) onto the grid of ``fixed_image``.

    Parameters
    ----------
    moving_image, fixed_image : (X, Y, Z) float arrays
        T1 images of the labelled scan and of the scan to label.
    moving_label : (X, Y, Z) int array
        Fine atlas or SAP map of the labelled scan.
    moving_affine, fixed_affine : (4, 4)
        Voxel → world (mm) matrices.
    groups : mapping name → label values, optional
        Bones refined separately (default :data:`FINE_BONE_GROUPS` if any label > 9, else
        :data:`SKELETON_BONE_GROUPS`). Labels in no group follow the global transform.
    refine : bool
        Run the per-bone stage (False → ``label_map`` equals ``global_label_map``).
    dilate_mm, coarse_dilate_mm : float
        Margin (mm) around each bone sampled by the metric in the fine and the coarse stage.
    split_components : bool, optional
        Register each 26-connected piece of a group separately (left/right bones of one SAP
        class). Default: True for SAP maps, False for fine-atlas groups (vertebrae stay together).
    min_voxels : int
        Smaller pieces keep the global transform.
    seed : int
        Seed of the metric's random sampling (global stage).

    Returns
    -------
    PropagationResult

    Raises
    ------
    LabelError
        Arrays not 3-D or label/image grids differ.
    """
    mov = np.asarray(moving_image, dtype=np.float32)
    fix = np.asarray(fixed_image, dtype=np.float32)
    lab = np.asarray(moving_label).astype(np.int16)
    for name, arr in (("moving_image", mov), ("fixed_image", fix), ("moving_label", lab)):
        if arr.ndim != 3:
            raise LabelError(f"{name} must be 3-D (X, Y, Z), got shape {arr.shape}")
    if lab.shape != mov.shape:
        raise LabelError(f"moving_label shape {lab.shape} ≠ moving_image shape {mov.shape}; label the same grid")
    m_aff, f_aff = np.asarray(moving_affine, float), np.asarray(fixed_affine, float)
    f_img, m_img = to_sitk(fix, f_aff), to_sitk(mov, m_aff)
    g_tx, g_val = register_rigid(f_img, m_img, shrink=(4, 2), sampling=0.1, iterations=100, seed=seed)
    metrics = {"global": g_val}

    def warp(labels: np.ndarray, tx: sitk.Transform) -> np.ndarray:  # int16 labels onto the fixed grid
        return resample(labels, m_aff, fix.shape, f_aff, transform=tx, nearest=True)

    global_map = warp(lab, g_tx).astype(np.int16)
    if not refine:
        return PropagationResult(global_map, global_map.copy(), metrics)
    if groups is None:
        groups = FINE_BONE_GROUPS if lab.max() > 9 else SKELETON_BONE_GROUPS
        if split_components is None:
            split_components = groups is SKELETON_BONE_GROUPS
    spacing = float(np.sqrt((m_aff[:3, :3] ** 2).sum(axis=0)).min())
    out = np.where(np.isin(global_map, [v for vals in groups.values() for v in vals]), 0, global_map).astype(np.int16)
    for name, values in groups.items():
        in_group = np.isin(lab, values)
        if not in_group.any():
            continue
        pieces = [in_group]
        if split_components:
            comp, n = label_components(in_group, connectivity=26, order="C")
            sizes = np.bincount(comp.ravel())
            pieces = [comp == k for k in range(1, n + 1) if sizes[k] >= min_voxels]
            small = in_group & ~np.any(pieces, axis=0) if pieces else in_group
            if small.any():  # tiny fragments keep the global transform
                w = warp(np.where(small, lab, 0).astype(np.int16), g_tx)
                out[(w > 0) & (out == 0)] = w[(w > 0) & (out == 0)]
        for j, piece in enumerate(pieces):
            tx = g_tx
            # Coarse stage: a wide mask (the limb's soft tissue moves with its bone) and a target crop with
            # room for a 10° limb rotation (~15 voxels at the far end of a femur), then a tight mask.
            for dil_mm, shrink, sampling, margin in ((coarse_dilate_mm, (4, 2), 0.5, 20), (dilate_mm, (2, 1), 0.5, 6)):
                tx, val = _refine_piece(piece, tx, m_img, f_img, m_aff, fix.shape, dilate_vox=max(1, int(round(dil_mm / spacing))),
                                        shrink=shrink, sampling=sampling, margin_vox=margin, seed=seed)
            metrics[f"{name}#{j}" if len(pieces) > 1 else name] = val
            w = warp(np.where(piece, lab, 0).astype(np.int16), tx)
            put = w > 0
            out[put] = w[put]
    return PropagationResult(out, global_map, metrics)


def per_bone_dice(gt: npt.ArrayLike, pred: npt.ArrayLike, *,
                  groups: Mapping[str, tuple[int, ...]] = FINE_BONE_GROUPS) -> pd.Series:
    """Dice of each bone group of a reference ``gt`` and a propagated ``pred`` label map (mask = any of its
    labels; :func:`sapkit.metrics.dice_per_group`, same argument order).

    NaN when the group is absent in both maps; :class:`~sapkit.errors.MetricInputError` (from
    :mod:`sapkit.metrics`) when the maps differ in shape.

    Returns
    -------
    Series
        Index = group names, values in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 1, 1), np.int16); b = a.copy(); a[:2] = 26; b[1:3] = 26
    >>> float(per_bone_dice(a, b, groups={"femur L": (26,)})["femur L"])
    0.5
    """
    return pd.Series(dice_per_group(gt, pred, groups), name="dice", dtype=float)


def propagation_dice_table(manifest, *, n_subjects: int | None = None, run_dir: str | Path | None = None,
                           seed: int = 42) -> pd.DataFrame:
    """Propagate each healthy subject's first scan to its other scans and score every bone group.

    For every subject (sorted by ``subject_id``; the first ``n_subjects``) the labels of its
    first scan are carried onto each of its other scans with :func:`propagate_labels` (T1
    images), and both stages are compared with the scan's own labels by :func:`per_bone_dice`.
    The fine atlas and :data:`FINE_BONE_GROUPS` are used when every healthy scan has a
    ``fine_label``, else the SAP map and :data:`SKELETON_BONE_GROUPS`.

    Parameters
    ----------
    manifest : sapkit.data.manifest.Manifest
    n_subjects : int, optional
        Subjects to propagate (default all); each scan pair takes seconds to a minute.
    run_dir : str or Path, optional
        When given, the propagated SAP maps of both stages (``RunDir.propagated_label``, uint8 on
        the target grid) and the table (``RunDir.propagation_dice_csv``) are written there.
    seed : int
        Seed of the registration's metric sampling.

    Returns
    -------
    DataFrame
        Index (``scan_id``, ``stage``) with ``stage`` in (``"global"``, ``"per-bone"``), one row
        per propagated scan and stage; one column per bone group (Dice in [0, 1], NaN when the
        group is absent from both maps). Empty, with the group columns, when no subject has a
        second scan.

    Raises
    ------
    LabelError
        ``n_subjects`` below 1.
    """
    from sapkit.io.nifti import read_image, read_label, save_nifti

    if n_subjects is not None and n_subjects < 1:
        raise LabelError(f"n_subjects must be ≥ 1 (or None for all), got {n_subjects}")
    healthy = manifest.healthy()
    has_fine = "fine_label" in healthy.columns and bool((healthy["fine_label"] != "").all()) and len(healthy) > 0
    groups, column = (FINE_BONE_GROUPS, "fine_label") if has_fine else (SKELETON_BONE_GROUPS, "skeleton_label")
    keys, rows = [], []
    for _, scans in list(healthy.groupby("subject_id"))[:n_subjects]:
        ref = scans.iloc[0]
        ref_t1, ref_affine, _ = read_image(ref["t1"], what="t1")
        ref_label, _, _ = read_label(ref[column], what=column)
        for _, target in scans.iloc[1:].iterrows():
            t1, affine, header = read_image(target["t1"], what="t1")
            result = propagate_labels(ref_t1, ref_label, t1, moving_affine=ref_affine, fixed_affine=affine,
                                      groups=groups, seed=seed)
            truth, _, _ = read_label(target[column], what=column)
            for stage, label_map in (("global", result.global_label_map), ("per-bone", result.label_map)):
                keys.append((target["scan_id"], stage))
                rows.append(per_bone_dice(truth, label_map, groups=groups))
                if run_dir is not None:
                    sap_map = fine_to_skeleton(label_map) if has_fine else label_map
                    save_nifti(sap_map, affine, RunDir(run_dir).propagated_label(target["scan_id"], stage),
                               header=header, dtype=np.uint8)
    index = pd.MultiIndex.from_arrays([[k[0] for k in keys], [k[1] for k in keys]], names=["scan_id", "stage"])
    table = pd.DataFrame([r.reindex(list(groups)).to_numpy() for r in rows], index=index, columns=list(groups),
                         dtype=float)
    if run_dir is not None:
        atomic_write_text(RunDir(run_dir).propagation_dice_csv, table.to_csv())
    return table

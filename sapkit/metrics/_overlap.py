"""Voxel overlap of masks and label maps: Dice and IoU, binary, per class and per group of labels.

The one Dice family of the kit: skeleton Dice per class (training validation, notebook 02), Dice
per bone group (label propagation), global and per-lesion Dice of the lesion report
(``docs/metrics.md`` §8) and the lesion explorer widget all call these functions.

Conventions (pinned by tests)
-----------------------------
- ``Dice = 2|G ∩ P| / (|G| + |P|)`` and ``IoU = |G ∩ P| / |G ∪ P|``, counted in voxels: every
  voxel weighs the same, so the voxel spacing (anisotropic or not) does not enter.
- Both empty (a class or group absent from both maps): NaN, undefined; exactly one empty: 0.
- Label maps hold non-negative whole numbers (any integer, bool or float dtype); background 0
  is never scored as a class.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import MetricInputError

__all__ = ["dice", "iou", "dice_per_class", "dice_per_group"]


def _check_masks(gt: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two 2D/3D masks on one grid, as bool arrays (non-zero is foreground)."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise MetricInputError(
            f"gt shape {gt.shape} ≠ pred shape {pred.shape}; both masks must be on the same grid "
            "(resample the prediction onto the ground-truth grid)"
        )
    if gt.ndim not in (2, 3):
        raise MetricInputError(f"masks must be 2D or 3D, got {gt.ndim}D arrays of shape {gt.shape}")
    return gt.astype(bool, copy=False), pred.astype(bool, copy=False)


def _dice_from_counts(n_inter: int, n_gt: int, n_pred: int) -> float:
    """``2 n_inter / (n_gt + n_pred)`` from voxel counts; NaN when both counts are 0."""
    total = n_gt + n_pred
    return float("nan") if total == 0 else float(2.0 * n_inter / total)


def _iou_from_counts(n_inter: int, n_gt: int, n_pred: int) -> float:
    """``n_inter / (n_gt + n_pred - n_inter)`` from voxel counts; NaN when both counts are 0."""
    union = n_gt + n_pred - n_inter
    return float("nan") if union == 0 else float(n_inter / union)


def _mask_counts(gt: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[int, int, int]:
    g, p = _check_masks(gt, pred)
    return int(np.count_nonzero(g & p)), int(np.count_nonzero(g)), int(np.count_nonzero(p))


def dice(gt: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """Dice coefficient ``2|G∩P| / (|G| + |P|)`` of two binary masks.

    Parameters
    ----------
    gt, pred : (X, Y[, Z]) array of bool or int
        Masks on the same grid; any non-zero value is foreground.

    Returns
    -------
    float
        In [0, 1]; NaN when both masks are empty (undefined), 0 when exactly one is.

    Raises
    ------
    MetricInputError
        The masks differ in shape or are not 2D/3D.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> dice(a, b)
    0.5
    """
    return _dice_from_counts(*_mask_counts(gt, pred))


def iou(gt: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """Intersection over union (Jaccard index) ``|G∩P| / |G∪P|`` of two binary masks.

    Parameters
    ----------
    gt, pred : (X, Y[, Z]) array of bool or int
        Masks on the same grid; any non-zero value is foreground.

    Returns
    -------
    float
        In [0, 1]; NaN when both masks are empty, 0 when exactly one is. ``IoU = D / (2 - D)``
        for Dice ``D``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> round(iou(a, b), 4)
    0.3333
    """
    return _iou_from_counts(*_mask_counts(gt, pred))


_DIRECT_MAX_LABEL = 1023  # up to here the joint histogram spans every label value (≤ 1024² bins)


def _integer_labels(label_map: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """The map as integers (floats truncated, as ``astype``) and its largest label; no negatives."""
    lab = label_map if label_map.dtype.kind in "iu" else label_map.astype(np.int64)
    if lab.size == 0:
        return lab, 0
    low, high = int(lab.min()), int(lab.max())
    if low < 0:
        raise MetricInputError(f"{name} holds negative labels (min {low}); label maps must hold "
                               "non-negative class indices, 0 = background")
    return lab, high


def _joint_counts(gt_label_map: npt.ArrayLike, pred_label_map: npt.ArrayLike,
                  labels: Sequence[int]) -> tuple[np.ndarray, dict[int, int]]:
    """Joint voxel histogram of two label maps, in one pass, and the row of each of ``labels``.

    Entry ``[i, j]`` counts the voxels whose GT label has row ``i`` and predicted label row ``j``;
    every voxel is counted once, so row sums are GT label volumes and column sums predicted
    ones. Small label values index the histogram directly; large ones go through a lookup table
    of ``labels`` (every other label shares row 0 then).
    """
    gt = np.asarray(gt_label_map)
    pred = np.asarray(pred_label_map)
    if gt.shape != pred.shape:
        raise MetricInputError(f"label maps differ in shape: gt {gt.shape} vs pred {pred.shape}; "
                               "compare label maps on one grid (resample first)")
    gt, high_g = _integer_labels(gt, "gt_label_map")
    pred, high_p = _integer_labels(pred, "pred_label_map")
    wanted = sorted(set(int(c) for c in labels))
    high = max(high_g, high_p, *wanted, 0)
    if high <= _DIRECT_MAX_LABEL:
        n = high + 1
        codes = gt.astype(np.int64, copy=False).ravel() * n + pred.astype(np.int64, copy=False).ravel()
        return np.bincount(codes, minlength=n * n).reshape(n, n), {c: c for c in wanted}
    row = {c: i for i, c in enumerate(wanted, start=1)}
    k = len(wanted) + 1
    lut = np.zeros(max(wanted, default=0) + 1, dtype=np.int64)
    lut[list(row)] = list(row.values())

    def codes_of(lab: np.ndarray) -> np.ndarray:
        out = np.zeros(lab.shape, dtype=np.int64)
        inside = lab < lut.size
        out[inside] = lut[lab[inside]]
        return out.ravel()

    joint = np.bincount(codes_of(gt) * k + codes_of(pred), minlength=k * k).reshape(k, k)
    return joint, row


def _group_dice(joint: np.ndarray, rows: Sequence[int]) -> float:
    """Dice of the union of the labels at ``rows`` of a joint histogram (each row once)."""
    idx = np.asarray(sorted(set(rows)), dtype=np.intp)
    n_inter = int(joint[np.ix_(idx, idx)].sum())
    return _dice_from_counts(n_inter, int(joint[idx, :].sum()), int(joint[:, idx].sum()))


def dice_per_class(gt_label_map: npt.ArrayLike, pred_label_map: npt.ArrayLike, *,
                   classes: Mapping[int, str] | Sequence[int]) -> dict[int, float]:
    """Dice of each class of two label maps (e.g. the 9 skeleton regions).

    Parameters
    ----------
    gt_label_map, pred_label_map : (X, Y, Z) or (X, Y) array of int
        Label maps on the same grid; non-negative class indices, 0 = background.
    classes : mapping or sequence of int
        Class indices to score (background 0 is skipped if present); a mapping's keys are used.

    Returns
    -------
    dict of int -> float
        Dice per class, in the order of ``classes``; NaN where the class is absent from both maps.

    Raises
    ------
    MetricInputError
        The maps differ in shape or hold negative labels.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([[0, 1, 1, 2], [0, 1, 2, 2]]); pred = np.array([[0, 1, 2, 2], [0, 1, 2, 0]])
    >>> {c: round(d, 3) for c, d in dice_per_class(gt, pred, classes=[1, 2, 3]).items()}
    {1: 0.8, 2: 0.667, 3: nan}
    """
    ids = [int(c) for c in classes if int(c) != 0]
    joint, row = _joint_counts(gt_label_map, pred_label_map, ids)
    return {c: _group_dice(joint, [row[c]]) for c in ids}


def dice_per_group(gt_label_map: npt.ArrayLike, pred_label_map: npt.ArrayLike,
                   groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Dice of groups of labels, each group merged into one mask (e.g. bone groups of fine labels).

    Parameters
    ----------
    gt_label_map, pred_label_map : (X, Y, Z) or (X, Y) array of int
        Label maps on the same grid; non-negative labels.
    groups : mapping str -> sequence of int
        Group name → the labels that form its mask (e.g. ``{"thoracic spine": range(8, 20)}``);
        groups may share labels.

    Returns
    -------
    dict of str -> float
        Dice per group, in the order of ``groups``; NaN where the group is absent from both maps.

    Raises
    ------
    MetricInputError
        The maps differ in shape or hold negative labels.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([[1, 2, 2, 0]]); pred = np.array([[2, 2, 0, 0]])
    >>> dice_per_group(gt, pred, {"spine": (1, 2), "femur": (9,)})
    {'spine': 0.8, 'femur': nan}
    """
    members = {name: [int(v) for v in values] for name, values in groups.items()}
    joint, row = _joint_counts(gt_label_map, pred_label_map, [v for values in members.values() for v in values])
    return {name: _group_dice(joint, [row[v] for v in values]) for name, values in members.items()}

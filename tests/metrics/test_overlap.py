"""sapkit.metrics._overlap: binary Dice/IoU, Dice per class and per group — hand-computed cases and MONAI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sapkit.errors import MetricInputError
from sapkit.metrics import dice, dice_per_class, dice_per_group, iou, normalized_surface_dice


def _random_label_maps(seed, shape=(17, 13, 11), n_classes=6, flip=0.3):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, n_classes, shape).astype(np.int16)
    pred = np.where(rng.random(shape) < flip, rng.integers(0, n_classes, shape), gt).astype(np.int16)
    return gt, pred


def test_binary_dice_and_iou_hand_computed():
    gt = np.zeros((4, 5, 6), bool)
    pred = np.zeros_like(gt)
    gt[0, :2, :3] = True  # 6 voxels
    pred[0, 1:3, :3] = True  # 6 voxels, 3 shared
    assert dice(gt, pred) == 2 * 3 / 12
    assert iou(gt, pred) == 3 / 9
    assert iou(gt, pred) == pytest.approx(dice(gt, pred) / (2 - dice(gt, pred)))
    # integer masks: any non-zero value is foreground
    assert dice(gt.astype(np.uint8) * 7, pred.astype(np.int32)) == 0.5


def test_empty_masks_nan_and_zero():
    empty = np.zeros((3, 3, 3), np.uint8)
    one = empty.copy()
    one[1, 1, 1] = 1
    assert math.isnan(dice(empty, empty)) and math.isnan(iou(empty, empty))
    assert dice(one, empty) == 0.0 == dice(empty, one)
    assert iou(one, empty) == 0.0
    assert dice(one, one) == 1.0 == iou(one, one)


def test_dice_counts_voxels_whatever_the_spacing():
    """Dice is a voxel count: an anisotropic grid (2 × 1 × 5 mm) changes the NSD, never the Dice."""
    gt = np.zeros((12, 12, 12), bool)
    pred = np.zeros_like(gt)
    gt[2:8, 2:8, 2:8] = True  # 216 voxels
    pred[3:9, 2:8, 2:8] = True  # shifted by one voxel along X: 180 shared
    assert dice(gt, pred) == 2 * 180 / 432
    iso = normalized_surface_dice(gt, pred, spacing_mm=(1, 1, 1), tolerance_mm=1.0)
    aniso = normalized_surface_dice(gt, pred, spacing_mm=(2, 1, 5), tolerance_mm=1.0)
    assert iso == pytest.approx(1.0) and aniso < 0.9  # the 2 mm shift exceeds the 1 mm tolerance


def test_dice_per_class():
    gt = np.array([[0, 1, 1, 2], [0, 1, 2, 2]])
    pred = np.array([[0, 1, 2, 2], [0, 1, 2, 0]])
    out = dice_per_class(gt, pred, classes=[1, 2, 3])
    assert list(out) == [1, 2, 3]
    assert out[1] == 2 * 2 / (3 + 2)
    assert out[2] == 2 * 2 / (3 + 3)
    assert math.isnan(out[3])  # absent from both maps: undefined
    # a mapping's keys are the classes; background 0 is never scored
    named = dice_per_class(gt, pred, classes={0: "background", 2: "thoracic spine"})
    assert named == {2: out[2]}
    # a class only in the prediction scores 0
    assert dice_per_class(np.zeros((2, 2), int), np.eye(2, dtype=int) * 4, classes=[4]) == {4: 0.0}


def test_dice_per_class_equals_binary_dice_of_each_class_mask():
    for seed in range(3):
        gt, pred = _random_label_maps(seed)
        classes = range(1, 7)  # 6 never occurs
        out = dice_per_class(gt, pred, classes=classes)
        for c in classes:
            ref = dice(gt == c, pred == c)
            assert (math.isnan(out[c]) and math.isnan(ref)) or out[c] == ref  # bit-identical


def test_dice_per_class_matches_monai_compute_dice():
    import torch
    from monai.metrics import compute_dice

    for seed in range(3):
        gt, pred = _random_label_maps(seed, n_classes=5)
        one_hot = lambda m: torch.as_tensor(np.stack([m == c for c in range(5)])[None].astype(np.float32))  # noqa: E731
        theirs = compute_dice(one_hot(pred), one_hot(gt), include_background=False).numpy()[0]
        ours = dice_per_class(gt, pred, classes=range(1, 5))
        np.testing.assert_allclose([ours[c] for c in range(1, 5)], theirs, rtol=1e-6)


def test_dice_per_group_merges_labels_and_equals_mask_dice():
    gt = np.array([[1, 2, 2, 0, 9]])
    pred = np.array([[2, 2, 0, 0, 3]])
    out = dice_per_group(gt, pred, {"spine": (1, 2), "femur": [9], "hip": (4,), "left": (1,)})
    assert list(out) == ["spine", "femur", "hip", "left"]
    assert out["spine"] == 2 * 2 / (3 + 2)
    assert out["femur"] == 0.0 and math.isnan(out["hip"]) and out["left"] == 0.0
    for seed in range(3):
        gt, pred = _random_label_maps(10 + seed, n_classes=40)
        groups = {"a": range(1, 8), "b": (8, 30, 39), "c": (12,), "overlap": (5, 8), "absent": (77,)}
        got = dice_per_group(gt, pred, groups)
        for name, values in groups.items():
            ref = dice(np.isin(gt, list(values)), np.isin(pred, list(values)))
            assert (math.isnan(got[name]) and math.isnan(ref)) or got[name] == ref  # bit-identical


def test_large_label_values_and_float_label_maps():
    gt = np.array([[0, 70000, 70000, 5]], np.int64)
    pred = np.array([[70000, 70000, 0, 5]], np.int64)
    assert dice_per_class(gt, pred, classes=[70000, 5]) == {70000: 0.5, 5: 1.0}
    assert dice_per_class(gt.astype(np.float64), pred.astype(np.float32), classes=[5]) == {5: 1.0}


def test_invalid_inputs_raise():
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(MetricInputError, match="same grid"):
        dice(a, a[:3])
    with pytest.raises(MetricInputError, match="2D or 3D"):
        iou(a[0, 0], a[0, 0])
    with pytest.raises(MetricInputError, match="one grid"):
        dice_per_class(a, a[:, :3], classes=[1])
    with pytest.raises(MetricInputError, match="one grid"):
        dice_per_group(a, a[:, :3], {"x": (1,)})
    with pytest.raises(MetricInputError, match="negative labels"):
        dice_per_group(a.astype(np.int8) - 1, a, {"x": (1,)})

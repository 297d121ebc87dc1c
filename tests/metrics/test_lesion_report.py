"""sapkit.metrics._lesion_report: panoptica golden values, hit-rule fixtures, volumes, empty cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from sapkit.errors import MetricInputError
from sapkit.metrics import LESION_COLUMNS, PREDICTION_COLUMNS, dice, lesion_counts_by_threshold, lesion_report


def _panoptica():
    ref = np.zeros((50, 50), np.uint8)
    ref[5:15, 5:15] = 1
    ref[20:30, 20:30] = 2
    ref[40:48, 5:13] = 3
    pred = np.zeros((50, 50), np.uint8)
    pred[5:15, 5:15] = 1
    pred[21:30, 20:30] = 2
    pred[40:48, 40:48] = 4
    return ref, pred


@pytest.mark.parametrize("hit", ["iou:0.5", "any"])
def test_panoptica_golden_values(hit):
    ref, pred = _panoptica()
    r = lesion_report(ref, pred, spacing_mm=(1, 1), hit=hit)
    p = r.patient
    assert (p.tp, p.fp, p.fn) == (2, 1, 1)
    assert p.precision == pytest.approx(2 / 3) and p.sensitivity == pytest.approx(2 / 3)
    matched = r.lesions[r.lesions["detected"]]
    assert matched["iou"].mean() == pytest.approx(0.95, abs=1e-5)
    assert matched["dice"].mean() == pytest.approx(0.97368, abs=1e-5)
    f1 = p.tp / (p.tp + 0.5 * p.fp + 0.5 * p.fn)
    assert matched["iou"].mean() * f1 == pytest.approx(0.63333, abs=1e-5)  # panoptic quality
    assert p.global_dice == pytest.approx(0.73359, abs=1e-5)
    assert p.global_dice / (2 - p.global_dice) == pytest.approx(0.57927, abs=1e-5)  # global IoU
    assert r.predictions["n_voxels"].sum() == 254 and r.lesions["n_voxels"].sum() == 264
    assert list(r.lesions.columns) == list(LESION_COLUMNS)
    assert list(r.predictions.columns) == list(PREDICTION_COLUMNS)


def _vol(shape=(30, 30, 30)):
    return np.zeros(shape, np.uint8)


def test_one_voxel_touch_any_vs_iou():
    gt, pred = _vol(), _vol()
    gt[5:12, 5:12, 5:12] = 1
    pred[11:18, 11:18, 11:18] = 1  # shares exactly one voxel (11, 11, 11)
    a = lesion_report(gt, pred, spacing_mm=(1, 1, 1), hit="any").patient
    i = lesion_report(gt, pred, spacing_mm=(1, 1, 1), hit="iou:0.5").patient
    assert (a.tp, a.fn, a.fp) == (1, 0, 0)
    assert (i.tp, i.fn, i.fp) == (0, 1, 1)
    # default: the whole 7³ predicted component counts
    assert a.dice_detected == pytest.approx(2 / (343 + 343))
    # "box": only its voxels inside the lesion's box padded by ceil(2 mm / 1 mm) + 1 = 3 voxels (4³)
    box = lesion_report(gt, pred, spacing_mm=(1, 1, 1), lesion_scores="box").patient
    assert box.dice_detected == pytest.approx(2 / (343 + 64))


def test_one_prediction_covering_two_lesions():
    gt, pred = _vol(), _vol()
    gt[5:10, 5:10, 5:10] = 1
    gt[5:10, 5:10, 12:17] = 1
    pred[5:10, 5:10, 5:17] = 1  # bridges both lesions
    a = lesion_report(gt, pred, spacing_mm=(1, 1, 1), hit="any")
    assert (a.patient.tp, a.patient.fn, a.patient.fp) == (2, 0, 0)
    assert a.predictions["matched_lesion_ids"].tolist() == ["1;2"]
    # default: each lesion against the whole 300-voxel bridge
    assert a.lesions["dice"].tolist() == pytest.approx([2 * 125 / (125 + 300)] * 2)
    assert a.lesions["iou"].tolist() == pytest.approx([125 / 300] * 2)
    # "box" (pad = ceil(2/1)+1 = 3): the box's z-range covers 8 of the 12 slices
    box = lesion_report(gt, pred, spacing_mm=(1, 1, 1), lesion_scores="box")
    assert box.lesions["dice"].tolist() == pytest.approx([2 * 125 / (125 + 25 * 8)] * 2)
    i = lesion_report(gt, pred, spacing_mm=(1, 1, 1), hit="iou:0.3").patient
    assert (i.tp, i.fn, i.fp) == (1, 1, 0)  # one-to-one: the second lesion is missed
    i5 = lesion_report(gt, pred, spacing_mm=(1, 1, 1), hit="iou:0.5").patient
    assert (i5.tp, i5.fn, i5.fp) == (0, 2, 1)  # IoU 125/300 < 0.5 for both


def test_two_predictions_on_one_lesion():
    gt, pred = _vol(), _vol()
    gt[5:15, 5:10, 5:10] = 1
    pred[5:9, 5:10, 5:10] = 1
    pred[11:15, 5:10, 5:10] = 1
    a = lesion_report(gt, pred, spacing_mm=(1, 1, 1), hit="any")
    assert (a.patient.tp, a.patient.fn, a.patient.fp) == (1, 0, 0)
    assert a.lesions["matched_pred_ids"].tolist() == ["1;2"]
    assert a.lesions["dice"].iloc[0] == pytest.approx(2 * 200 / (250 + 200))
    i = lesion_report(gt, pred, spacing_mm=(1, 1, 1), hit="iou:0.3").patient
    assert (i.tp, i.fn, i.fp) == (1, 0, 1)  # only one prediction may match


def test_connectivity_diagonal_chain():
    gt = _vol((10, 10, 10))
    for k in range(5):
        gt[2 + k, 2 + k, 2 + k] = 1
    counts = {c: lesion_report(gt, gt, spacing_mm=(1, 1, 1), connectivity=c).patient.n_lesions for c in (6, 18, 26)}
    assert counts == {6: 5, 18: 5, 26: 1}
    edge = _vol((10, 10, 10))
    edge[2, 2, 2] = edge[3, 3, 2] = 1  # edge neighbours: joined at 18 and 26
    assert lesion_report(edge, edge, spacing_mm=(1, 1, 1), connectivity=18).patient.n_lesions == 1
    assert lesion_report(edge, edge, spacing_mm=(1, 1, 1), connectivity=6).patient.n_lesions == 2


@pytest.mark.parametrize("spacing,box", [((0.5, 0.5, 2.0), (10, 10, 20)), ((0.8, 0.5, 2.5), (10, 10, 10)),
                                         ((1.0, 1.0, 2.5), (8, 5, 10))])
def test_large_lesion_boundary_anisotropic(spacing, box):
    # a box of exactly 1 mL is large; the same box minus one corner voxel is not
    n_at_1ml = int(np.prod(box))
    gt = np.zeros((60, 60, 60), np.uint8)
    gt[:box[0], :box[1], :box[2]] = 1
    gt[30:30 + box[0], 30:30 + box[1], 30:30 + box[2]] = 1
    gt[30, 30, 30] = 0
    r = lesion_report(gt, np.zeros_like(gt), spacing_mm=spacing)
    vols = sorted(zip(r.lesions["n_voxels"], r.lesions["large"], r.lesions["volume_ml"]))
    assert [(n, large) for n, large, _ in vols] == [(n_at_1ml - 1, False), (n_at_1ml, True)]
    assert vols[1][2] == pytest.approx(1.0)
    p = r.patient
    assert p.n_large_lesions == 1 and p.sensitivity_large == 0.0
    # a ≥ 1 mL false positive elsewhere is a large FP; a smaller one is not
    pred = np.zeros_like(gt)
    pred[:box[0], 45:45 + box[1], :box[2]] = 1
    assert lesion_report(gt, pred, spacing_mm=spacing).patient.fp_large == 1
    pred[0, 45, 0] = 0
    assert lesion_report(gt, pred, spacing_mm=spacing).patient.fp_large == 0


def test_empty_gt_and_empty_prediction():
    gt, pred = _vol(), _vol()
    pred[3:6, 3:6, 3:6] = 1
    r = lesion_report(gt, pred, spacing_mm=(1, 1, 1))
    p = r.patient
    assert (p.tp, p.fn, p.fp) == (0, 0, 1)
    assert math.isnan(p.sensitivity) and p.precision == 0.0 and p.f2 == 0.0
    assert r.lesions.empty and list(r.lesions.columns) == list(LESION_COLUMNS)
    gt[10:14, 10:14, 10:14] = 1
    r = lesion_report(gt, np.zeros_like(gt), spacing_mm=(1, 1, 1))
    p = r.patient
    assert (p.tp, p.fn, p.fp) == (0, 1, 0)
    assert p.sensitivity == 0.0 and math.isnan(p.precision) and p.f2 == 0.0
    assert p.dice_mean == 0.0 and math.isnan(p.dice_detected) and p.global_dice == 0.0
    assert r.predictions.empty and list(r.predictions.columns) == list(PREDICTION_COLUMNS)
    both = lesion_report(_vol(), _vol(), spacing_mm=(1, 1, 1)).patient
    assert math.isnan(both.f2) and math.isnan(both.global_dice) and both.n_lesions == 0


def _random_case(seed, shape=(40, 36, 48)):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    gt = (noise > 0.12).astype(np.uint8)
    prob = np.clip(ndimage.shift(noise, (0.8, 0, -0.5), order=1) * 4 + 0.4, 0, 1).astype(np.float32)
    return gt, prob


def test_matches_brute_force_full_volume_labelling():
    """The crop-based report equals a plain full-volume scipy implementation of the definitions."""
    gt, prob = _random_case(3)
    pred = (prob >= 0.6).astype(np.uint8)
    r = lesion_report(gt, pred, spacing_mm=(1.0, 1.2, 2.0))
    s26 = np.ones((3, 3, 3))
    g_lab, n_g = ndimage.label(gt, s26)
    p_lab, n_p = ndimage.label(pred, s26)
    detected = [bool(np.any(p_lab[g_lab == i])) for i in range(1, n_g + 1)]
    fp = sum(not np.any(g_lab[p_lab == j]) for j in range(1, n_p + 1))
    assert r.patient.n_lesions == n_g and r.patient.n_predictions == n_p
    assert r.patient.tp == sum(detected) and r.patient.fp == fp
    assert sorted(r.lesions["n_voxels"]) == sorted(np.bincount(g_lab.ravel())[1:])
    inter = np.count_nonzero(gt & pred)
    assert r.patient.global_dice == pytest.approx(2 * inter / (gt.sum() + pred.sum()))
    assert r.patient.global_dice == dice(gt, pred)  # the one Dice family, bit for bit


def test_memory_order_and_dtype_do_not_matter():
    gt, prob = _random_case(8)
    pred = prob >= 0.5
    a = lesion_report(gt, pred, spacing_mm=(1, 2, 3)).patient
    b = lesion_report(np.asfortranarray(gt.astype(np.int16)), np.asfortranarray(pred), spacing_mm=(1, 2, 3)).patient
    c = lesion_report(gt[:, ::-1][:, ::-1], pred.astype(np.uint8), spacing_mm=(1, 2, 3)).patient
    assert a == b == c


def test_bone_region_from_skeleton():
    gt, pred = _vol(), _vol()
    skel = np.zeros((30, 30, 30), np.int16)
    skel[:, :, :15] = 2  # thoracic
    skel[:, :, 15:] = 5  # pelvis
    gt[5:8, 5:8, 10:16] = 1  # 5 slices in thoracic, 1 in pelvis
    gt[20:23, 20:23, 20:23] = 1
    skel[20:23, 20:23, 20:23] = 0  # unlabelled (a rib lesion, say)
    r = lesion_report(gt, pred, spacing_mm=(1, 1, 1), skeleton=skel)
    assert r.lesions["bone_region"].tolist() == ["thoracic spine", "unlabelled"]
    assert r.lesions["bone_label"].tolist() == [2, 0]


def test_invalid_inputs():
    gt = _vol()
    with pytest.raises(MetricInputError, match="shape"):
        lesion_report(gt, np.zeros((30, 30, 29), np.uint8), spacing_mm=(1, 1, 1))
    with pytest.raises(MetricInputError, match=r"spacing_mm must be 3 positive numbers \(mm\), got \(1, 1\)"):
        lesion_report(gt, gt, spacing_mm=(1, 1))
    with pytest.raises(MetricInputError, match="tolerance_mm must be a finite number ≥ 0, got -1"):
        lesion_report(gt, gt, spacing_mm=(1, 1, 1), tolerance_mm=-1)
    with pytest.raises(MetricInputError, match="connectivity"):
        lesion_report(gt, gt, spacing_mm=(1, 1, 1), connectivity=8)
    with pytest.raises(MetricInputError, match="hit rule"):
        lesion_report(gt, gt, spacing_mm=(1, 1, 1), hit="iou:1.5")
    with pytest.raises(MetricInputError, match="exactly one"):
        lesion_report(gt, spacing_mm=(1, 1, 1))
    with pytest.raises(MetricInputError, match="bool or integer"):
        lesion_report(gt, gt.astype(np.float32), spacing_mm=(1, 1, 1))
    bad = np.zeros((30, 30, 30), np.float32)
    bad[3, 3, 3] = 1.5
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        lesion_report(gt, prob_map=bad, threshold=0.5, spacing_mm=(1, 1, 1))
    bad[3, 3, 3] = np.nan
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        lesion_counts_by_threshold(gt, bad, spacing_mm=(1, 1, 1), thresholds=[0.5])
    with pytest.raises(MetricInputError, match="threshold"):
        lesion_report(gt, prob_map=bad, threshold=0.0, spacing_mm=(1, 1, 1))


def test_touching_instance_labels_are_one_lesion_and_say_so():
    """Lesions are connected components of the non-zero voxels: two touching instance labels are one
    lesion (counted by hand: 1 GT lesion, TP 1), with a LesionLabelWarning; apart, two lesions, no warning."""
    import warnings

    from sapkit.errors import LesionLabelWarning

    gt = np.zeros((16, 16, 16), np.uint8)
    gt[2:5, 2:5, 2:5] = 1
    gt[5:8, 2:5, 2:5] = 2  # touches label 1 face to face
    pred = (gt > 0).astype(np.uint8)
    with pytest.warns(LesionLabelWarning, match=r"scan 's1': 1 lesion\(s\) join touching voxels of different mask "
                                                  r"values \(2 positive values in all\)"):
        r = lesion_report(gt, pred, spacing_mm=1.0, scan_id="s1")
    assert (r.patient.n_lesions, r.patient.tp, r.patient.fn) == (1, 1, 0)
    assert r.lesion_rows[0]["n_voxels"] == 54

    gt[5, 2:5, 2:5] = 0  # one background layer between them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = lesion_report(gt, (gt > 0).astype(np.uint8), spacing_mm=1.0)
    assert r.patient.n_lesions == 2
    binary = np.zeros((16, 16, 16), np.uint8)
    binary[2:8, 2:5, 2:5] = 255  # one value for every lesion voxel: a binary mask, nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lesion_report(binary, binary, spacing_mm=1.0).patient.n_lesions == 1

"""Per-lesion Dice/IoU/NSD against the whole matched predicted components (issue 15, fix 1).

Expected values are computed here independently: Dice/IoU from voxel counts of whole masks,
NSD with MONAI's ``compute_surface_dice(use_subvoxels=True)`` on the whole volume holding only
the lesion and its credited components.
"""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.metrics import lesion_report

SPACING = (1.0, 1.0, 1.0)


def _monai_nsd(gt: np.ndarray, pred: np.ndarray, spacing=SPACING, tol: float = 2.0) -> float:
    import torch
    from monai.metrics import compute_surface_dice

    one_hot = lambda m: torch.as_tensor(np.stack([~m, m])[None].astype(np.float32))  # noqa: E731
    return float(compute_surface_dice(one_hot(pred.astype(bool)), one_hot(gt.astype(bool)), class_thresholds=[tol],
                                      spacing=list(spacing), use_subvoxels=True).item())


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_tail_spilling_out_of_the_lesion_counts_whole():
    gt = np.zeros((24, 24, 40), np.uint8)
    gt[8:12, 8:12, 8:12] = 1  # 64-voxel cube
    pred = gt.copy()
    pred[8:12, 8:12, 12:28] = 1  # 4×4×16 tail
    r = lesion_report(gt, pred, spacing_mm=SPACING)
    row = r.lesions.iloc[0]
    assert row["dice"] == pytest.approx(2 * 64 / (64 + 320)) and row["dice"] == pytest.approx(1 / 3)
    assert row["iou"] == pytest.approx(64 / 320)
    assert row["nsd"] == pytest.approx(_monai_nsd(gt, pred), abs=1e-6)
    assert row["nsd"] < 0.8
    box = lesion_report(gt, pred, spacing_mm=SPACING, lesion_scores="box").lesions.iloc[0]
    assert box["dice"] == pytest.approx(2 * 64 / (64 + 64 + 48))  # 0.727…: 3 tail slices in the padded box
    assert box["nsd"] > row["nsd"]


def test_rod_nsd_whole_vs_box():
    gt = np.zeros((16, 16, 60), np.uint8)
    gt[6:9, 6:9, 10:16] = 1
    pred = np.zeros_like(gt)
    pred[6:9, 6:9, 10:50] = 1  # a rod far longer than the lesion
    sp = (1.2, 1.2, 1.5)
    row = lesion_report(gt, pred, spacing_mm=sp).lesions.iloc[0]
    assert row["nsd"] == pytest.approx(_monai_nsd(gt, pred, sp), abs=1e-6)
    assert row["dice"] == pytest.approx(_dice(gt, pred))


def test_prediction_bridging_two_lesions():
    gt = np.zeros((20, 20, 30), np.uint8)
    gt[5:10, 5:10, 4:9] = 1
    gt[5:10, 5:10, 14:19] = 1
    pred = np.zeros_like(gt)
    pred[5:10, 5:10, 5:18] = 1  # one component over both, partly covering each
    sp = (0.9, 1.1, 1.3)
    r = lesion_report(gt, pred, spacing_mm=sp)
    assert (r.patient.tp, r.patient.fn, r.patient.fp) == (2, 0, 0)
    for lesion_id, z in ((1, slice(0, 12)), (2, slice(12, 30))):
        one = np.zeros_like(gt)
        one[..., z] = gt[..., z]
        row = r.lesions.set_index("lesion_id").loc[lesion_id]
        assert row["dice"] == pytest.approx(_dice(one, pred))
        assert row["dice"] == pytest.approx(2 * 100 / (125 + 325))
        assert row["nsd"] == pytest.approx(_monai_nsd(one, pred, sp), abs=1e-6)


def test_lesion_split_into_two_predictions():
    gt = np.zeros((24, 20, 20), np.uint8)
    gt[4:16, 5:10, 5:10] = 1
    pred = np.zeros_like(gt)
    pred[2:8, 5:10, 5:10] = 1  # spills 2 slices below
    pred[11:20, 5:10, 5:10] = 1  # spills 4 slices above
    r = lesion_report(gt, pred, spacing_mm=SPACING)
    assert (r.patient.tp, r.patient.fn, r.patient.fp) == (1, 0, 0)
    row = r.lesions.iloc[0]
    assert row["matched_pred_ids"] == "1;2"
    assert row["dice"] == pytest.approx(2 * (4 + 5) * 25 / (12 * 25 + 15 * 25))
    assert row["nsd"] == pytest.approx(_monai_nsd(gt, pred), abs=1e-6)


@pytest.mark.parametrize("hit", ["any", "iou:0.1"])
def test_prediction_touching_the_volume_border(hit):
    gt = np.zeros((16, 18, 20), np.uint8)
    gt[0:4, 3:8, 15:20] = 1  # touches x = 0 and z = end
    pred = np.zeros_like(gt)
    pred[0:6, 2:8, 12:20] = 1
    sp = (1.4, 1.0, 0.8)
    row = lesion_report(gt, pred, spacing_mm=sp, hit=hit).lesions.iloc[0]
    assert row["dice"] == pytest.approx(_dice(gt, pred))
    assert row["nsd"] == pytest.approx(_monai_nsd(gt, pred, sp), abs=1e-6)


def test_random_cases_match_whole_mask_scores():
    """Each detected lesion scored on the whole volume restricted to it and its credited components."""
    import cc3d
    from scipy import ndimage

    rng = np.random.default_rng(3)
    sp = (1.0, 1.3, 0.9)
    for _ in range(3):
        noise = ndimage.gaussian_filter(rng.normal(size=(40, 36, 32)), 2.0)
        gt = (noise > 0.12).astype(np.uint8)
        pred = (ndimage.shift(noise, (1.2, -0.8, 0.5), order=1) > 0.09).astype(np.uint8)
        r = lesion_report(gt, pred, spacing_mm=sp)
        g_lab = cc3d.connected_components(gt, connectivity=26)
        p_lab = cc3d.connected_components(pred, connectivity=26)
        for row in r.lesions[r.lesions["detected"]].itertuples():
            # match sapkit's lesion to cc3d's by voxel count and centroid
            cx, cy, cz = int(round(row.centroid_x_vox)), int(round(row.centroid_y_vox)), int(round(row.centroid_z_vox))
            sizes = np.bincount(g_lab.ravel())
            cands = [g for g in np.flatnonzero(sizes == row.n_voxels) if g]
            g = min(cands, key=lambda k: np.abs(np.argwhere(g_lab == k).mean(0) - (cx, cy, cz)).sum())
            lesion = g_lab == g
            preds = np.unique(p_lab[lesion & (p_lab > 0)])
            whole = np.isin(p_lab, preds)
            assert row.dice == pytest.approx(_dice(lesion, whole))
            assert row.nsd == pytest.approx(_monai_nsd(lesion, whole, sp), abs=1e-6)

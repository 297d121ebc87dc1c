"""sapkit.labels.mapping: fine → SAP map, TotalSegmentator MR mapping, majority vote, volumes, QC tables."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import LabelError
from sapkit.label_maps import FINE_ATLAS, FINE_TO_SKELETON
from sapkit.labels.mapping import (TOTALSEG_TOTAL_MR, TOTALSEG_VERTEBRAE_MR, bone_volumes, fine_to_skeleton,
                           lesion_volume_table, majority_vote_components, skeleton_qc_table, totalseg_to_fine,
                           totalseg_to_skeleton)
from sapkit.data.manifest import load_manifest


def test_fine_to_skeleton_follows_spec_grouping():
    fine = np.arange(62, dtype=np.int16).reshape(62, 1, 1)
    sap = fine_to_skeleton(fine)[:, 0, 0]
    expected = [0] + [1] * 7 + [2] * 12 + [3] * 6 + [4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9] + [0] * 25
    assert sap.tolist() == expected
    assert sap.tolist() == [FINE_TO_SKELETON[i] for i in range(62)]


@pytest.mark.parametrize(("array", "message"), [
    (np.full((2, 2, 2), 62, np.int16), r"values \[62\]"),
    (np.zeros((2, 2), np.int16), "3-D"),
    (np.zeros((2, 2, 2), np.float32), "integers"),
])
def test_fine_to_skeleton_rejects_bad_input(array, message):
    with pytest.raises(LabelError, match=message):
        fine_to_skeleton(array)


def test_totalseg_tables_match_the_published_class_maps():
    assert len(TOTALSEG_TOTAL_MR) == 50
    assert (TOTALSEG_TOTAL_MR[19], TOTALSEG_TOTAL_MR[30], TOTALSEG_TOTAL_MR[36], TOTALSEG_TOTAL_MR[39]) == \
        ("vertebrae", "humerus_left", "femur_left", "hip_right")
    assert len(TOTALSEG_VERTEBRAE_MR) == 25
    assert (TOTALSEG_VERTEBRAE_MR[1], TOTALSEG_VERTEBRAE_MR[2], TOTALSEG_VERTEBRAE_MR[18], TOTALSEG_VERTEBRAE_MR[25]) == \
        ("sacrum", "vertebrae_L5", "vertebrae_T1", "vertebrae_C1")


def test_totalseg_to_fine_and_skeleton():
    total = np.zeros((6, 1, 1), np.int16)
    total[:, 0, 0] = [36, 39, 19, 19, 5, 20]  # femur_left, hip_right, 2 vertebra voxels, liver, disc
    levels = np.zeros_like(total)
    levels[2, 0, 0] = 2  # L5; voxel 3 has no level → nearest (voxel 2 → L5)
    fine = totalseg_to_fine(total, levels)[:, 0, 0]
    assert fine.tolist() == [26, 29, 24, 24, 0, 61]
    assert [FINE_ATLAS[v] for v in fine[:3]] == ["femur L", "hip bone R", "L5"]
    assert totalseg_to_skeleton(total, levels)[:, 0, 0].tolist() == [4, 5, 3, 3, 0, 0]
    with pytest.raises(LabelError, match="vertebrae_mr"):
        totalseg_to_fine(total)
    with pytest.raises(LabelError, match=r"values \[51\]"):
        totalseg_to_fine(np.full((1, 1, 1), 51, np.int16))


def test_majority_vote_by_6_connected_component():
    lab = np.zeros((5, 5, 1), np.int16)
    lab[0, 0:3, 0] = [2, 2, 3]       # one piece, majority 2
    lab[3, 3, 0] = 5                 # diagonal neighbour of (4, 4): separate at 6, joined at 26
    lab[4, 4, 0] = 6
    lab[2, 0, 0] = 7                 # a third piece, far from the others
    lab[3, 0, 0] = 7
    out6 = majority_vote_components(lab, connectivity=6)
    assert out6[0, :3, 0].tolist() == [2, 2, 2]
    assert (out6[3, 3, 0], out6[4, 4, 0]) == (5, 6)
    out26 = majority_vote_components(lab, connectivity=26)
    assert out26[3, 3, 0] == out26[4, 4, 0] == 5  # tie → smaller label
    assert out26[2, 0, 0] == out26[3, 0, 0] == 7
    assert majority_vote_components(np.zeros((2, 2, 2), np.uint8)).sum() == 0  # empty stays empty
    with pytest.raises(LabelError, match="connectivity"):
        majority_vote_components(lab, connectivity=8)


def test_bone_volumes_anisotropic():
    lab = np.zeros((4, 4, 4), np.int16)
    lab[:2, :2, :2] = 4
    table = bone_volumes(lab, spacing_mm=(1.0, 2.0, 5.0))
    femur = table.set_index("bone").loc["femur"]
    assert femur["n_voxels"] == 8 and femur["volume_ml"] == pytest.approx(8 * 10 / 1000)
    assert len(table) == 9 and table["n_voxels"].sum() == 8
    with pytest.raises(LabelError, match="spacing_mm"):
        bone_volumes(lab, spacing_mm=(1.0, 0.0, 1.0))


def test_qc_table_flags_missing_bones(tiny_cohort):
    manifest = load_manifest(tiny_cohort)
    qc = skeleton_qc_table(manifest)
    assert set(qc["scan_id"]) == set(manifest.healthy()["scan_id"])
    assert len(qc) == 2 * 9
    present = qc[qc["class_id"].isin([2, 4])]
    assert not present["outlier"].any() and (present["robust_z"] == 0).all()
    assert qc[~qc["class_id"].isin([2, 4])]["outlier"].all()  # missing bones are flagged
    empty = skeleton_qc_table(manifest, scan_ids=[])
    assert empty.empty and "outlier" in empty.columns


def test_lesion_volume_table(tiny_cohort):
    table = lesion_volume_table(load_manifest(tiny_cohort))
    assert table.groupby("scan_id").size().tolist() == [1, 2, 3, 4]  # patient k has k+1 lesions
    assert np.allclose(table["volume_ml"], 8 * 12 / 1000)  # 2×2×2 voxels of 2×2×3 mm

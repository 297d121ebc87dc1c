"""sapkit.labels.propagation: label propagation on phantom repeat scans (acceptance 4) and its inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.config import load_config
from sapkit.data.manifest import load_manifest
from sapkit.data.phantom import generate_cohorts, make_grid, make_scan, make_sites, make_subject
from sapkit.errors import LabelError, MetricInputError
from sapkit.io.nifti import read_label
from sapkit.io.run_paths import RunDir
from sapkit.labels.propagation import (FINE_BONE_GROUPS, SKELETON_BONE_GROUPS, per_bone_dice, propagate_labels,
                                       propagation_dice_table)
from sapkit.metrics import dice

DEMO = load_config("demo").synth


@pytest.fixture(scope="module")
def propagated():
    """Scan 0 → scan 1 of healthy subject 1 on the demo grid (3 mm); scans from two sites."""
    grid, sites = make_grid(DEMO), make_sites(3, seed=DEMO.seed)
    subject = make_subject(DEMO, cohort="healthy", index=1)
    ref = make_scan(subject, grid, scan_index=0, site=sites[1], config=DEMO)
    tgt = make_scan(subject, grid, scan_index=1, site=sites[2], config=DEMO)
    result = propagate_labels(ref.image[0], ref.fine_label, tgt.image[0], moving_affine=ref.affine,
                              fixed_affine=tgt.affine)
    return pd.DataFrame({"global": per_bone_dice(tgt.fine_label, result.global_label_map),
                         "per_bone": per_bone_dice(tgt.fine_label, result.label_map)}), result, tgt


def test_propagation_reaches_mean_per_bone_dice_085(propagated):
    dice, _, _ = propagated
    assert dice["per_bone"].notna().all() and len(dice) == len(FINE_BONE_GROUPS)
    assert dice["per_bone"].mean() >= 0.85


@pytest.mark.parametrize("bone", ["humerus L", "humerus R", "femur L", "femur R"])
def test_per_bone_refinement_beats_global_on_limbs(propagated, bone):
    dice, _, _ = propagated
    assert dice.loc[bone, "per_bone"] > dice.loc[bone, "global"] + 0.1
    assert dice.loc[bone, "per_bone"] >= 0.85


def test_propagated_labels_are_in_the_source_map(propagated):
    _, result, tgt = propagated
    assert result.label_map.shape == tgt.fine_label.shape
    assert set(np.unique(result.label_map)) <= set(np.unique(tgt.fine_label)) | {0}


def test_per_bone_dice_hand_computed_and_empty():
    a = np.zeros((4, 2, 1), np.int16)
    b = a.copy()
    a[:2, 0] = 26   # 2 voxels
    b[1:4, 0] = 26  # 3 voxels, 1 shared
    d = per_bone_dice(b, a, groups={"femur L": (26,), "sternum": (36,)})  # (gt, pred)
    assert d["femur L"] == pytest.approx(2 * 1 / 5)
    assert np.isnan(d["sternum"])  # absent in both: undefined
    with pytest.raises(MetricInputError, match="one grid"):  # raised by sapkit.metrics
        per_bone_dice(a, b[:3])


def test_propagate_rejects_mismatched_label():
    img = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(LabelError, match="moving_label shape"):
        propagate_labels(img, np.zeros((8, 8, 7), np.int16), img, moving_affine=np.eye(4), fixed_affine=np.eye(4))


# ----------------------------------------------------------------------------- the cohort table
@pytest.fixture(scope="module")
def propagated_cohort(tmp_path_factory):
    """The smoke phantom (6 mm, 2 healthy subjects × 2 scans), its first subject propagated into a run folder."""
    run_dir = tmp_path_factory.mktemp("propagation") / "run"
    synth = load_config("smoke", {"synth": {"n_patients": 1}}).synth
    generate_cohorts(RunDir(run_dir).data, synth, progress=False)
    manifest = load_manifest(RunDir(run_dir).data)
    return propagation_dice_table(manifest, n_subjects=1, run_dir=run_dir), manifest, RunDir(run_dir)


def test_propagation_table_shape_index_and_range(propagated_cohort):
    table, manifest, _ = propagated_cohort
    second_scan = manifest.healthy().groupby("subject_id")["scan_id"].nth(1).iloc[0]
    assert table.index.names == ["scan_id", "stage"]
    assert table.index.tolist() == [(second_scan, "global"), (second_scan, "per-bone")]
    assert table.columns.tolist() == list(FINE_BONE_GROUPS)       # the phantom has a fine atlas
    values = table.to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    assert table.loc[(second_scan, "per-bone")].mean() > table.loc[(second_scan, "global")].mean()


def test_propagation_table_files_and_dice_agree_with_metrics(propagated_cohort):
    table, manifest, rd = propagated_cohort
    scan_id = table.index[0][0]
    pd.testing.assert_frame_equal(pd.read_csv(rd.propagation_dice_csv, index_col=[0, 1]), table)
    truth, _, _ = read_label(manifest.scans.set_index("scan_id").loc[scan_id, "skeleton_label"])
    # groups that are exactly one SAP class: Dice on the written SAP maps equals the table's fine-atlas Dice
    one_class = {"cervical spine": 1, "thoracic spine": 2, "lumbar spine": 3, "sternum": 9}
    for stage in ("global", "per-bone"):
        written, _, _ = read_label(rd.propagated_label(scan_id, stage))
        assert set(np.unique(written)) <= set(range(10))
        for bone, k in one_class.items():
            assert table.loc[(scan_id, stage), bone] == pytest.approx(dice(truth == k, written == k), abs=1e-12)


def test_propagation_table_without_repeat_scans_is_empty(tiny_cohort, tmp_path):
    table = propagation_dice_table(load_manifest(tiny_cohort), run_dir=tmp_path)   # one scan per subject, no atlas
    assert table.empty and table.columns.tolist() == list(SKELETON_BONE_GROUPS)
    assert table.index.names == ["scan_id", "stage"]
    assert RunDir(tmp_path).propagation_dice_csv.is_file()
    with pytest.raises(LabelError, match="n_subjects must be ≥ 1"):
        propagation_dice_table(load_manifest(tiny_cohort), n_subjects=0)

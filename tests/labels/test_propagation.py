"""sapkit.labels.propagation: label propagation on phantom repeat scans (acceptance 4) and its inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.config import load_config
from sapkit.errors import MetricInputError
from sapkit.data.phantom import make_grid, make_scan, make_sites, make_subject
from sapkit.labels.propagation import FINE_BONE_GROUPS, per_bone_dice, propagate_labels

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
    return pd.DataFrame({"global": per_bone_dice(result.global_label_map, tgt.fine_label),
                         "per_bone": per_bone_dice(result.label_map, tgt.fine_label)}), result, tgt


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
    d = per_bone_dice(a, b, groups={"femur L": (26,), "sternum": (36,)})
    assert d["femur L"] == pytest.approx(2 * 1 / 5)
    assert np.isnan(d["sternum"])  # absent in both: undefined
    with pytest.raises(MetricInputError, match="one grid"):
        per_bone_dice(a, b[:3])


def test_propagate_rejects_mismatched_label():
    img = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(MetricInputError, match="moving_label shape"):
        propagate_labels(img, np.zeros((8, 8, 7), np.int16), img, moving_affine=np.eye(4), fixed_affine=np.eye(4))

"""sapkit.data.phantom: determinism, anatomy variation, lesion statistics, contrast, poses, config checks."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from sapkit.config import SynthConfig, load_config
from sapkit.errors import ConfigError
from sapkit.label_maps import FINE_ATLAS, SKELETON_CLASSES
from sapkit.data.manifest import load_manifest
from sapkit.data.phantom import Tissue, generate_cohorts, is_generated, make_grid, make_scan, make_sites, make_subject
from sapkit.data.phantom._contrast import TISSUE_B1000, TISSUE_T1

TINY = SynthConfig(n_healthy_subjects=1, scans_per_subject=2, n_patients=2, spacing_mm=6.0, height_mm=660.0, seed=7)
DEMO = load_config("demo").synth


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = generate_cohorts(tmp_path / "a", TINY, progress=False).parent
    b = generate_cohorts(tmp_path / "b", TINY, progress=False).parent
    da, db = _digests(a), _digests(b)
    assert len(da) == 2 * 4 + 2 * 5 + 4  # healthy: t1 b1000 skeleton fine; patient: + lesion; csv/yaml/json
    assert da == db
    assert is_generated(a, TINY) and not is_generated(a, dataclasses.replace(TINY, seed=8))
    manifest = load_manifest(a)  # validates every file, grid and label value
    assert set(manifest.scans["cohort"]) == {"healthy", "patient"}


def test_different_seeds_give_different_anatomy():
    grid = make_grid(TINY)
    site = make_sites(1, seed=0)[0]
    labels = []
    for seed in (1, 2):
        cfg = dataclasses.replace(TINY, seed=seed)
        subject = make_subject(cfg, cohort="healthy", index=0)
        labels.append(make_scan(subject, grid, scan_index=0, site=site, config=cfg).fine_label)
    differ = float((labels[0] != labels[1]).mean())
    assert differ > 0.002
    assert set(np.unique(labels[0])) == set(np.unique(labels[1]))  # same bones, different shapes


@pytest.fixture(scope="module")
def patients():
    """20 patients on the demo grid (3 mm), generated in memory."""
    grid = make_grid(DEMO)
    site = make_sites(3, seed=DEMO.seed)[0]
    return [make_scan(make_subject(DEMO, cohort="patient", index=i), grid, scan_index=0, site=site, config=DEMO)
            for i in range(20)]


def test_lesion_volume_distribution_matches_the_paper(patients):
    volumes, counts = [], []
    for scan in patients:
        comp = cc3d.connected_components(scan.lesion_label > 0, connectivity=26)
        sizes = np.bincount(comp.ravel())[1:]
        volumes += list(sizes * scan.grid.voxel_volume_ml)
        counts.append(len(sizes))
        assert len(sizes) == len(scan.lesions)  # grown lesions never touch each other
    volumes = np.asarray(volumes)
    assert len(volumes) >= 60
    assert 0.3 <= np.median(volumes) <= 0.8
    assert 0.15 <= (volumes >= 1.0).mean() <= 0.35
    assert min(counts) >= 1 and max(counts) >= 3 * np.median(counts)  # heavy tail


def test_every_lesion_voxel_is_inside_bone_and_labels_are_in_the_maps(patients):
    for scan in patients:
        fine_at_lesion = scan.fine_label[scan.lesion_label > 0]
        assert ((fine_at_lesion >= 1) & (fine_at_lesion <= 60)).all()  # labelled bone or ribs, never discs
        assert set(np.unique(scan.fine_label)) <= set(FINE_ATLAS)
        assert set(np.unique(scan.skeleton_label)) <= set(SKELETON_CLASSES)
        assert set(np.unique(scan.lesion_label)) <= {0, 1}
    assert set(np.unique(patients[0].skeleton_label)) == set(SKELETON_CLASSES)  # all 9 bones + background


def test_contrast_follows_met_rads_and_lookalikes_match_lesions(patients):
    assert TISSUE_T1[Tissue.FAT] > TISSUE_T1[Tissue.MARROW] > TISSUE_T1[Tissue.MUSCLE] > TISSUE_T1[Tissue.CORTEX]
    assert TISSUE_T1[Tissue.LUNG] < TISSUE_T1[Tissue.MUSCLE]
    for t in (Tissue.CORD, Tissue.SPLEEN, Tissue.KIDNEY, Tissue.NODE, Tissue.BLADDER):
        assert TISSUE_B1000[t] > 4 * TISSUE_B1000[Tissue.MARROW]
    scan = max(patients, key=lambda s: int(s.lesion_label.sum()))
    t1, b = scan.image
    lesion = scan.lesion_label > 0
    bone = (scan.fine_label > 0) & (scan.fine_label < 61)
    marrow = ndimage.binary_erosion(bone) & ~ndimage.binary_dilation(lesion)  # inside the cortical rim
    assert t1[lesion].mean() < 0.7 * t1[marrow].mean()
    assert b[lesion].mean() > 3 * b[marrow].mean()
    assert scan.image.min() >= 0


def test_repeat_scans_rotate_limbs_5_to_10_degrees():
    subject = make_subject(TINY, cohort="healthy", index=0)
    grid, site = make_grid(TINY), make_sites(1, seed=0)[0]
    s0 = make_scan(subject, grid, scan_index=0, site=site, config=TINY)
    s1 = make_scan(subject, grid, scan_index=1, site=site, config=TINY)
    for key in ("arm_L", "arm_R", "leg_L", "leg_R"):
        rel = s1.pose.limbs[key] @ s0.pose.limbs[key].T
        angle = np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
        assert 5.0 - 1e-6 <= angle <= 10.0 + 1e-6
    global_angle = np.degrees(np.arccos(np.clip((np.trace(s1.pose.rot) - 1) / 2, -1, 1)))
    assert 1.0 - 1e-6 <= global_angle <= 3.0 + 1e-6 and np.abs(s1.pose.shift_mm).max() <= 5.0


def test_demo_grid_covers_neck_to_knees_at_3mm():
    grid = make_grid(DEMO)
    assert grid.spacing_mm == 3.0
    assert grid.shape[2] * grid.spacing_mm >= 600  # skull base to below the knees
    assert grid.shape == (103, 55, 220)


@pytest.mark.parametrize(("change", "message"), [
    ({"n_sites": 0}, "n_sites"),
    ({"spacing_mm": 0.1}, "spacing_mm"),
    ({"limb_rotation_deg": (10.0, 5.0)}, "limb_rotation_deg"),
    ({"height_mm": 50.0}, "height_mm"),
])
def test_invalid_config_raises(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        generate_cohorts(tmp_path, dataclasses.replace(TINY, **change), progress=False)


def test_unknown_cohort_raises():
    with pytest.raises(ConfigError, match="healthy' or 'patient"):
        make_subject(TINY, cohort="control", index=0)

"""Dataset fingerprint against numpy on tiny cohorts, and its JSON round trip."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sapkit.data.fingerprint import fingerprint_manifest, fingerprint_scan, save_fingerprint
from sapkit.data.manifest import load_manifest, write_manifest
from sapkit.io.run_paths import RunDir


def _save(path, data, affine):
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path.name


# (scan_id, subject, site, cohort, shape in voxels, affine diagonal in mm; negative = flipped axis)
SCANS = [
    ("a_s0", "a", "x", "healthy", (6, 5, 4), (2.0, 2.0, 3.0)),
    ("a_s1", "a", "x", "healthy", (8, 5, 4), (1.5, 2.0, 3.0)),
    ("b_s0", "b", "y", "patient", (7, 9, 3), (-2.5, -2.0, 4.0)),  # LPS: left-handed voxel axes
]


@pytest.fixture
def mixed(tmp_path):
    """Three scans with different shapes, spacings and one LPS orientation; raw arrays kept for checks."""
    rng = np.random.default_rng(11)
    root = tmp_path / "data"
    root.mkdir()
    rows, raw = [], {}
    for scan_id, subject, site, cohort, shape, diag in SCANS:
        affine = np.diag([*diag, 1.0])
        t1 = rng.normal(200, 30, shape).astype(np.float32)
        b1000 = rng.gamma(2.0, 10.0, shape).astype(np.float32)
        label = np.zeros(shape, np.int16)
        label[1:3, 1:3, 0:2] = 1 if cohort == "patient" else 7  # 8 voxels
        if cohort == "healthy":
            label[3:5, 0:1, 1:2] = 2  # 2 more voxels of another class
        raw[scan_id] = (t1, b1000, label, float(np.prod(np.abs(diag))) / 1000.0)
        rows.append({"scan_id": scan_id, "subject_id": subject, "site": site, "cohort": cohort,
                     "t1": _save(root / f"{scan_id}_t1.nii.gz", t1, affine),
                     "b1000": _save(root / f"{scan_id}_b1000.nii.gz", b1000, affine),
                     "skeleton_label": _save(root / f"{scan_id}_skel.nii.gz", label, affine) if cohort == "healthy" else "",
                     "lesion_label": _save(root / f"{scan_id}_les.nii.gz", label.astype(np.uint8), affine)
                     if cohort == "patient" else ""})
    return load_manifest(write_manifest(root, pd.DataFrame(rows), name="mixed", description="fingerprint test")), raw


def test_per_scan_values_match_numpy(mixed):
    manifest, raw = mixed
    fp = {s["scan_id"]: s for s in fingerprint_manifest(manifest)["scans"]}
    assert list(fp) == [s[0] for s in SCANS]
    for scan_id, subject, site, cohort, shape, diag in SCANS:
        s = fp[scan_id]
        t1, b1000, label, voxel_ml = raw[scan_id]
        assert (s["subject_id"], s["site"], s["cohort"]) == (subject, site, cohort)
        assert s["shape"] == list(shape) and s["spacing_mm"] == [abs(d) for d in diag]
        np.testing.assert_allclose(s["t1_percentiles"], np.percentile(t1, [1, 50, 99]), rtol=1e-6)
        np.testing.assert_allclose(s["b1000_percentiles"], np.percentile(b1000, [1, 50, 99]), rtol=1e-6)
    assert (fp["a_s0"]["orientation"], fp["a_s0"]["handedness"]) == ("RAS", "right")
    assert (fp["b_s0"]["orientation"], fp["b_s0"]["handedness"]) == ("LPS", "right")  # two flips keep handedness
    # label volumes: voxel count × voxel volume, named by the manifest's label maps
    assert fp["a_s0"]["skeleton_volume_ml"] == {"thoracic spine": round(2 * 0.012, 3), "scapulae": round(8 * 0.012, 3)}
    assert fp["a_s1"]["skeleton_volume_ml"]["scapulae"] == round(8 * 1.5 * 2 * 3 / 1000, 3)
    assert fp["b_s0"]["lesion_volume_ml"] == {"lesion": round(8 * 2.5 * 2 * 4 / 1000, 3)}
    assert "lesion_volume_ml" not in fp["a_s0"] and "skeleton_volume_ml" not in fp["b_s0"]


def test_left_handed_affine(tmp_path):
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])  # one flip: LAS, a left-handed voxel grid
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    row = {"scan_id": "s", "subject_id": "s", "site": "x", "cohort": "healthy", "skeleton_label": "", "lesion_label": "",
           "t1": str(tmp_path / _save(tmp_path / "t1.nii.gz", data, affine)),
           "b1000": str(tmp_path / _save(tmp_path / "b.nii.gz", 2 * data, affine))}
    s = fingerprint_scan(row, {"skeleton": {}, "lesion": {}})
    assert (s["orientation"], s["handedness"]) == ("LAS", "left")
    np.testing.assert_allclose(s["b1000_percentiles"], 2 * np.percentile(data, [1, 50, 99]), rtol=1e-6)


def test_dataset_summary(mixed):
    manifest, _ = mixed
    d = fingerprint_manifest(manifest)["dataset"]
    assert d["name"] == "mixed"
    assert (d["n_scans"], d["n_healthy_scans"], d["n_patient_scans"], d["n_subjects"]) == (3, 2, 1, 2)
    assert d["sites"] == ["x", "y"]
    spacings = np.array([[abs(v) for v in s[5]] for s in SCANS])
    assert d["median_spacing_mm"] == np.median(spacings, axis=0).tolist() == [2.0, 2.0, 3.0]
    shapes = np.array([s[4] for s in SCANS])
    assert d["shape_min"] == shapes.min(axis=0).tolist() == [6, 5, 3]
    assert d["shape_max"] == shapes.max(axis=0).tolist() == [8, 9, 4]
    assert d["orientations"] == ["LPS", "RAS"]


def test_tiny_cohort_summary(tiny_cohort):
    d = fingerprint_manifest(load_manifest(tiny_cohort))["dataset"]
    assert (d["n_scans"], d["n_healthy_scans"], d["n_patient_scans"], d["n_subjects"]) == (6, 2, 4, 6)
    assert d["shape_min"] == d["shape_max"] == [12, 10, 14] and d["median_spacing_mm"] == [2.0, 2.0, 3.0]


def test_json_round_trip_into_the_run_folder(mixed, tmp_path):
    manifest, _ = mixed
    fp = fingerprint_manifest(manifest)
    rd = RunDir(tmp_path / "run")
    path = save_fingerprint(fp, rd.fingerprint_json)
    assert path == rd.fingerprint_json
    assert json.loads(path.read_text()) == fp  # plain JSON types only: the dict survives unchanged
    again = save_fingerprint(fingerprint_manifest(manifest), rd.fingerprint_json)
    assert again.read_bytes() == path.read_bytes()  # deterministic

"""Loading manifest scans as preprocessed cases (conftest's tiny cohort: 2 healthy, 4 patient scans)."""

import nibabel as nib
import numpy as np
import pytest

from sapkit.errors import ManifestError
from sapkit.data.cases import Case, load_case, load_cases
from sapkit.data.intensity import scale_intensity
from sapkit.data.manifest import load_manifest

SHAPE = (12, 10, 14)  # write_tiny_cohort's grid, voxels
SPACING = (2.0, 2.0, 3.0)  # mm


def _raw(path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


@pytest.fixture
def manifest(tiny_cohort):
    return load_manifest(tiny_cohort)


def test_healthy_case_channels_grid_and_skeleton(manifest):
    case = load_case(manifest, "h00_s0")
    assert isinstance(case, Case)
    assert (case.scan_id, case.subject_id, case.cohort, case.site) == ("h00_s0", "h00", "healthy", "site0")
    assert case.image.shape == (2, *SHAPE) and case.image.dtype == np.float32 and case.shape == SHAPE
    assert case.spacing_mm == SPACING
    np.testing.assert_array_equal(case.affine, np.diag([*SPACING, 1.0]))
    # channel 0 is the T1 file, channel 1 the b1000 file, each scaled on its own 1st-99th percentiles
    row = manifest.row("h00_s0")
    raw = np.stack([_raw(row["t1"]), _raw(row["b1000"])])
    np.testing.assert_array_equal(case.image, scale_intensity(raw, percentiles=(1.0, 99.0)))
    # the tiny cohort's T1 (mean 100) and b1000 (mean 50) differ: swapping them would not match
    assert not np.array_equal(case.image[0], scale_intensity(raw[1:], percentiles=(1.0, 99.0))[0])
    assert case.skeleton.dtype == np.int16 and case.lesion is None
    values, counts = np.unique(case.skeleton, return_counts=True)
    assert values.tolist() == [0, 2, 4] and counts[1:].tolist() == [3 * 3 * 10, 3 * 3 * 4]
    assert "h00_s0" in repr(case) and "(2.0, 2.0, 3.0) mm" in repr(case)


@pytest.mark.parametrize("scan_id, n_lesions", [("p02_s0", 1), ("p05_s0", 4)])
def test_patient_case_lesion_mask(manifest, scan_id, n_lesions):
    case = load_case(manifest, scan_id)
    assert case.cohort == "patient" and case.skeleton is None
    assert case.lesion.dtype == np.uint8 and set(np.unique(case.lesion)) == {0, 1}
    assert int(case.lesion.sum()) == 8 * n_lesions  # patient k has k+1 disjoint 2x2x2 cubes


def test_percentiles_are_passed_on(manifest):
    wide = load_case(manifest, "p03_s0", percentiles=(0.0, 100.0))
    raw_t1 = _raw(manifest.row("p03_s0")["t1"])
    expected = (raw_t1 - raw_t1.min()) / (raw_t1.max() - raw_t1.min())
    np.testing.assert_allclose(wide.image[0], expected, atol=1e-6)
    assert wide.image[0].min() == 0.0 and wide.image[0].max() == 1.0


def test_load_cases_selection(manifest):
    assert [c.scan_id for c in load_cases(manifest)] == ["h00_s0", "h01_s0", "p02_s0", "p03_s0", "p04_s0", "p05_s0"]
    assert [c.scan_id for c in load_cases(manifest, cohort="healthy")] == ["h00_s0", "h01_s0"]
    assert [c.scan_id for c in load_cases(manifest, cohort="patient", subjects=["p05", "p03", "h00"])] == \
        ["p03_s0", "p05_s0"]
    # explicit ids keep the caller's order; ids outside the cohort/subject filter are dropped
    assert [c.scan_id for c in load_cases(manifest, ["p04_s0", "h01_s0", "p02_s0"], cohort="patient")] == \
        ["p04_s0", "p02_s0"]
    assert load_cases(manifest, subjects=[]) == []
    # the same preprocessing as one-by-one loading
    one = load_case(manifest, "p04_s0")
    many = load_cases(manifest, ["p04_s0"])[0]
    np.testing.assert_array_equal(one.image, many.image)
    np.testing.assert_array_equal(one.lesion, many.lesion)


def test_unknown_scan_names_the_manifest(manifest):
    with pytest.raises(ManifestError, match=r"scan 'x9_s0' is not in manifest .*manifest\.yaml"):
        load_case(manifest, "x9_s0")

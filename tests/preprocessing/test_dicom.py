"""sapkit.preprocessing.dicom and .convert on DICOM nobody here wrote (pydicom's and pydicom-data's
test files) and on the synthetic raw cohort: sorting, reasons for what is not used, conversion."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from sapkit.data.phantom.dicom_writer import SeriesTags, write_dicom_series
from sapkit.errors import SapkitError
from sapkit.preprocessing.convert import convert_dicom
from sapkit.preprocessing.dicom import scan_dicom_tree
from sapkit.preprocessing.rules import load_rules

from dicom_builders import enhanced_from_classic
from raw_cohorts import small_raw  # noqa: F401 - fixture

RULES = load_rules()
PYDICOM_FILES = Path(pydicom.data.get_testdata_file("MR_small.dcm")).parent


def _data_store() -> Path | None:
    try:
        import data_store  # the pydicom-data package
    except ImportError:
        return None
    return Path(data_store.__file__).parent / "data"


def _n_files(root: Path) -> int:
    return sum(1 for d, _, names in os.walk(root) for n in names if not n.startswith("."))


def test_every_pydicom_test_file_is_sorted_or_skipped_with_a_reason():
    inv = scan_dicom_tree(PYDICOM_FILES, RULES)
    assert inv.series["n_files"].sum() + len(inv.skipped) == _n_files(PYDICOM_FILES)
    assert inv.scans == []  # no whole-body T1 + DWI examination in there
    assert (inv.series["reason"].str.len() > 0).all() and (inv.skipped["reason"].str.len() > 0).all()
    dicomdir = inv.skipped[inv.skipped["path"].str.contains("DICOMDIR")]
    assert len(dicomdir) >= 8 and (dicomdir["reason"] == "DICOMDIR index file (not an image)").all()
    assert "not a DICOM file" in inv.skipped.set_index("path").loc["README.txt", "reason"]
    by_desc = inv.series.set_index("description")
    assert set(by_desc.loc["FAST LOCALIZER", "sequence"]) == {"ignore"}  # five localizer series, one reason
    assert by_desc.loc["T/S/C RF FAST PILOT", "reason"].tolist() == ["rule: localizer"] * 2
    assert by_desc.loc["ANGIO Projected from   C", "sequence"] == "ignore"
    ct = inv.series[inv.series["modality"] == "CT"]
    assert len(ct) >= 5 and ct["reason"].str.startswith("modality CT is not one of").all()
    mr_small = inv.series[(inv.series["modality"] == "MR") & (inv.series["sequence"] == "unknown")]
    assert mr_small["n_files"].tolist() == [9]  # MR_small in 9 encodings: one series, one image
    assert "no rule matched" in mr_small["reason"].iloc[0]


@pytest.mark.skipif(_data_store() is None, reason="pydicom-data is not installed")
def test_pydicom_data_store_headers():
    inv = scan_dicom_tree(_data_store(), RULES)
    assert inv.series["n_files"].sum() + len(inv.skipped) == _n_files(_data_store())
    desc = inv.series.set_index("description")
    assert desc.loc["T1W/SE/1024", "sequence"] == "unknown"  # DERIVED: the T1 rule refuses derived images
    assert "ImageType DERIVED" in desc.loc["T1W/SE/1024", "reason"]
    assert desc.loc["marked lesion<MPR Collection>", "reason"] == "rule: derived map or reformat"


@pytest.mark.parametrize("converter", ["dcm2niix", "simpleitk"])
def test_real_mr_slice_converts_to_its_pixel_values(converter):
    path = PYDICOM_FILES / "MR_small.dcm"
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    volume, affine = convert_dicom([str(path)], converter=converter, what="MR_small")
    assert volume.shape == (64, 64, 1)
    np.testing.assert_array_equal(np.sort(volume.ravel()), np.sort(expected.ravel()).astype(np.float32))
    assert np.allclose(np.sqrt((affine[:3, :3] ** 2).sum(axis=0))[:2], [float(v) for v in ds.PixelSpacing])


def test_compressed_and_multiframe_real_files_convert_with_dcm2niix():
    plain, _ = convert_dicom([str(PYDICOM_FILES / "MR_small.dcm")])
    jpeg2000, _ = convert_dicom([str(PYDICOM_FILES / "MR_small_jp2klossless.dcm")])
    np.testing.assert_array_equal(plain, jpeg2000)  # lossless JPEG 2000 decodes to the same values
    if _data_store() is not None:
        emri = _data_store() / "emri_small.dcm"  # enhanced MR, 10 frames in one file
        volume, _ = convert_dicom([str(emri)], what="emri_small")
        frames = pydicom.dcmread(emri).pixel_array
        assert volume.shape == (64, 64, 10)
        np.testing.assert_array_equal(np.sort(volume.ravel()), np.sort(frames.ravel()).astype(np.float32))


def test_conversion_failure_names_the_stack(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    with pytest.raises(SapkitError, match="dcm2niix could not convert station 3 of scan x"):
        convert_dicom([str(bad)], what="station 3 of scan x")


def test_synthetic_tree_sorted_into_scans_and_stations(small_raw):
    inv = scan_dicom_tree(small_raw / "dicom", RULES)
    assert [s.scan_id for s in inv.scans] == ["h000_s0", "p000_s0"]
    assert set(inv.series["sequence"]) == {"t1", "dwi", "ignore"}  # the localizer is recognised and left out
    for scan in inv.scans:
        t1 = [s for s in scan.stations if s.sequence == "t1"]
        dwi = [s for s in scan.stations if s.sequence == "dwi"]
        assert [s.station for s in t1] == [1, 2, 3, 4, 5] and len(dwi) == 5
        assert all([b for b, _ in s.images] == [50.0, 1000.0] for s in dwi)  # b-values split out of one series
        assert all("station 1" in s.description for s in (t1[0], dwi[0]))  # numbered from the head
        assert scan.problems == () and scan.site == "site_a"


def test_any_nesting_and_file_names_give_the_same_scans(small_raw, tmp_path):
    flat = tmp_path / "flat"
    for k, f in enumerate(sorted((small_raw / "dicom").rglob("*.dcm"))):
        target = flat / ("deep/er" if k % 3 == 0 else "") / f"{(k * 7919) % 100003:06d}"  # no extension, shuffled
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
    (flat / "notes.txt").write_text("not an image")
    a, b = scan_dicom_tree(small_raw / "dicom", RULES), scan_dicom_tree(flat, RULES)
    assert [s.scan_id for s in a.scans] == [s.scan_id for s in b.scans]
    for sa, sb in zip(a.scans, b.scans):
        assert [(s.sequence, s.station, [b_ for b_, _ in s.images], [len(f) for _, f in s.images]) for s in sa.stations] == \
               [(s.sequence, s.station, [b_ for b_, _ in s.images], [len(f) for _, f in s.images]) for s in sb.stations]
    assert b.skipped["path"].tolist() == ["notes.txt"]


def _series(folder: Path, description: str, volumes: dict, affine: np.ndarray, uid: str = "1.2.3.4", first: int = 1):
    tags = SeriesTags("P9", "1.2.3", uid, "1.2.3.5", 3, description)
    return write_dicom_series(volumes, affine, folder, tags=tags, first_instance=first)[0]


def test_unusable_series_are_reported_not_raised(tmp_path):
    _series(tmp_path / "a", "WB T1 single", {None: np.ones((6, 5, 1))}, np.eye(4), uid="1.1")
    _series(tmp_path / "b", "WB DWI b800 no tag", {None: np.ones((6, 5, 4))}, np.eye(4), uid="1.2")
    inv = scan_dicom_tree(tmp_path, RULES)
    reasons = inv.series.set_index("description")["reason"]
    assert "a single slice is not a volume" in reasons["WB T1 single"]
    assert "without a b-value in the header" in reasons["WB DWI b800 no tag"]
    assert set(inv.series["sequence"]) == {"unusable"} and inv.scans == []


def test_several_stations_in_one_series_are_split_at_the_gap(tmp_path):
    low, high = np.eye(4), np.eye(4)
    high[2, 3] = 30.0  # 30 mm higher: a gap of 26 slices after the 4 of the first stack
    _series(tmp_path / "low", "WB T1", {None: np.ones((6, 5, 4))}, low)
    _series(tmp_path / "high", "WB T1", {None: np.ones((6, 5, 4))}, high, first=5)  # same series, next instances
    inv = scan_dicom_tree(tmp_path, RULES)
    assert inv.series["n_stacks"].tolist() == [2]
    t1 = inv.scans[0].stations
    assert [s.station for s in t1] == [1, 2] and inv.scans[0].problems[0].startswith("scan P9_s0 has no dwi series")


@pytest.fixture(scope="module")
def dwi_two_forms(tmp_path_factory):
    """A 2-b-value DWI series as classic slices and as one Enhanced file (b-values only per frame)."""
    root = tmp_path_factory.mktemp("enhanced")
    rng = np.random.default_rng(3)
    affine = np.array([[2.0, 0, 0, -10], [0, 2.5, 0, 5], [0, 0, 4.0, -300], [0, 0, 0, 1]])
    images = {50.0: rng.uniform(0, 900, (7, 6, 5)), 1000.0: rng.uniform(0, 300, (7, 6, 5))}
    tags = SeriesTags("E1", "1.2.3.1", "1.2.3.2", "1.2.3.3", 5, "WB_DWI_b50_b1000_st1", ("ORIGINAL", "PRIMARY", "DIFFUSION"))
    classic, _ = write_dicom_series(images, affine, root / "classic", tags=tags)
    enhanced = enhanced_from_classic(classic, root / "enhanced", per_frame_b=True)
    no_b = enhanced_from_classic(classic, root / "enhanced_no_b", per_frame_b=False)
    return root, classic, enhanced, no_b


def test_enhanced_dwi_per_frame_b_values_sort_and_convert_like_classic(dwi_two_forms):
    root, classic, enhanced, _ = dwi_two_forms
    inv_c, inv_e = scan_dicom_tree(root / "classic", RULES), scan_dicom_tree(root / "enhanced", RULES)
    assert inv_e.series["b_values"].tolist() == ["50 1000"] and inv_e.series["n_files"].tolist() == [1]
    (st_c,), (st_e,) = inv_c.scans[0].stations, inv_e.scans[0].stations
    assert [b for b, _ in st_e.images] == [b for b, _ in st_c.images] == [50.0, 1000.0]
    assert all(files == (str(enhanced),) for _, files in st_e.images)  # one file, selected by b-value
    for (b, files_c), (_, files_e) in zip(st_c.images, st_e.images):
        vc, ac = convert_dicom(files_c, what=f"classic b={b:g}")
        for converter in ("dcm2niix", "simpleitk"):
            ve, ae = convert_dicom(files_e, converter=converter, what=f"enhanced b={b:g}", b_value=b)
            assert ve.shape == vc.shape == (7, 6, 5) and np.array_equal(ae, ac)  # the same grid to the last bit
            # the same values up to float32 rounding (dcm2niix scales in float32): < 1e-6 relative
            assert float(np.abs(ve - vc).max()) <= 1e-6 * float(np.abs(vc).max())


def test_enhanced_without_b_values_and_enhanced_t1_in_simpleitk(dwi_two_forms, tmp_path):
    root, classic, _, no_b = dwi_two_forms
    inv = scan_dicom_tree(root / "enhanced_no_b", load_rules())
    reason = inv.series["reason"].iloc[0]
    assert "per-frame MRDiffusionSequence" in reason and "b_value_tags" not in reason
    # a T1-like Enhanced file (no b-values) read by the SimpleITK route: the kit's reader, not "axes don't match"
    t1_classic = classic[:5]  # the b=50 slices: one regular stack
    t1 = enhanced_from_classic(t1_classic, tmp_path / "t1", per_frame_b=False)
    vc, ac = convert_dicom([str(f) for f in t1_classic], converter="simpleitk", what="classic T1")
    ve, ae = convert_dicom([str(t1)], converter="simpleitk", what="enhanced T1")
    assert float(np.abs(ve - vc).max()) == 0.0 and np.array_equal(ae, ac)
    with pytest.raises(SapkitError, match="no frame with b = 700 s/mm²"):
        convert_dicom([str(t1)], what="enhanced T1", b_value=700.0)

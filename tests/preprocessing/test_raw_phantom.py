"""sapkit.data.phantom.raw: the synthetic raw acquisitions (stations, DWI grid and shifts, scales,
the two identical input forms, determinism)."""

from __future__ import annotations

import dataclasses
import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sapkit.config import RawSynthConfig
from sapkit.data.phantom.raw import generate_raw_cohort, is_raw_generated
from sapkit.errors import ConfigError
from sapkit.preprocessing.convert import convert_dicom, read_nifti_station
from sapkit.preprocessing.dicom import scan_dicom_tree
from sapkit.preprocessing.rules import load_rules

from raw_cohorts import SMALL, SMALL_RAW, small_raw  # noqa: F401 - shared sizes and fixture


def test_stations_overlap_and_cover_the_body(small_raw):
    truth = pd.read_csv(small_raw / "truth" / "stations.csv")
    shape = nib.load(str(small_raw / "truth" / "p000_s0_t1.nii.gz")).shape
    for scan_id, rows in truth.groupby("scan_id"):
        t1 = rows[rows["sequence"] == "t1"].sort_values("slab_start")
        assert len(t1) == SMALL_RAW.n_stations and len(rows) == 2 * SMALL_RAW.n_stations
        assert t1["slab_start"].iloc[0] == 0 and t1["slab_stop"].iloc[-1] == shape[2]
        overlaps = t1["slab_stop"].to_numpy()[:-1] - t1["slab_start"].to_numpy()[1:]
        assert (overlaps >= 3).all() and (overlaps <= 5).all()  # ~24 mm at 6 mm
        assert t1["station"].tolist() == [5, 4, 3, 2, 1]  # station 1 is the head end
        for sequence in ("t1", "dwi"):
            scales = rows[rows["sequence"] == sequence].sort_values("station")["scale"].to_numpy()
            assert (np.abs(np.log(scales[1:] / scales[:-1])) >= np.log(SMALL_RAW.scale_step[0]) - 1e-9).all()
        dwi = rows[rows["sequence"] == "dwi"]
        shift = np.linalg.norm(dwi[["shift_x_mm", "shift_y_mm", "shift_z_mm"]].to_numpy(), axis=1)
        assert (shift >= 2.0).all() and (shift <= 8.0).all()
        assert (rows["field_min"] < 1).all() and (rows["field_max"] > 1).all()  # every station has its own shading


def test_dwi_lies_on_a_coarser_grid_than_t1(small_raw):
    t1, t1_aff = read_nifti_station(small_raw / "nifti" / "p000_s0" / "t1_st2.nii.gz")
    dwi, dwi_aff = read_nifti_station(small_raw / "nifti" / "p000_s0" / "dwi_b1000_st2.nii.gz")
    sp_t1, sp_dwi = np.sqrt((t1_aff[:3, :3] ** 2).sum(0)), np.sqrt((dwi_aff[:3, :3] ** 2).sum(0))
    np.testing.assert_allclose(sp_dwi / sp_t1, [2.0, 2.0, 1.5])
    b50, _ = read_nifti_station(small_raw / "nifti" / "p000_s0" / "dwi_b50_st2.nii.gz")
    assert b50.shape == dwi.shape and b50.sum() > 2 * dwi.sum()  # b = 50 keeps more signal than b = 1000


def test_dicom_and_nifti_forms_hold_the_same_values(small_raw):
    scan = next(s for s in scan_dicom_tree(small_raw / "dicom", load_rules()).scans if s.scan_id == "h000_s0")
    station = next(s for s in scan.stations if s.sequence == "dwi" and s.station == 3)
    for b, files in station.images:
        from_dicom, aff_d = convert_dicom(files)
        from_nifti, aff_n = read_nifti_station(small_raw / "nifti" / "h000_s0" / f"dwi_b{b:g}_st3.nii.gz")
        assert np.array_equal(from_dicom, from_nifti) and np.array_equal(aff_d, aff_n)
    vendors = pd.read_csv(small_raw / "truth" / "stations.csv").groupby("scan_id")["vendor"].first().tolist()
    assert vendors == ["standard", "siemens"]  # the b-value sits in another tag for each scan


def test_same_settings_give_identical_files(tmp_path):
    one = dataclasses.replace(SMALL, n_healthy_subjects=0)
    a = generate_raw_cohort(tmp_path / "a", one, SMALL_RAW, forms=("nifti",), progress=False)
    b = generate_raw_cohort(tmp_path / "b", one, SMALL_RAW, forms=("nifti",), progress=False)
    digest = {p.relative_to(a): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(a.rglob("*")) if p.is_file()}
    assert digest == {p.relative_to(b): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(b.rglob("*")) if p.is_file()}
    assert not (a / "dicom").exists() and (a / "stations.csv").is_file()
    assert is_raw_generated(a, one, SMALL_RAW, forms=("nifti",))
    assert not is_raw_generated(a, one, dataclasses.replace(SMALL_RAW, overlap_mm=30.0), forms=("nifti",))


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"raw.synth.n_stations' must be in \[4, 8\]"):
        generate_raw_cohort(tmp_path, SMALL, RawSynthConfig(n_stations=3), progress=False)
    with pytest.raises(ValueError, match="forms must be"):
        generate_raw_cohort(tmp_path, SMALL, SMALL_RAW, forms=("png",), progress=False)
    too_long = dataclasses.replace(SMALL_RAW, overlap_mm=300.0)  # longer than the body
    with pytest.raises(ConfigError, match="use fewer stations or a smaller raw.synth.overlap_mm"):
        generate_raw_cohort(tmp_path, dataclasses.replace(SMALL, height_mm=200.0), too_long, progress=False)

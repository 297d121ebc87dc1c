"""The acquisition model: each defect of issue 24 built into one synthetic raw patient (6 mm grid,
5 T1 + 5 DWI stations, T1 boxes z −240…240 mm, 30 mm overlaps) ends in a named status naming the
station and the world range (mm), or in a correct result; ``raw.on_incomplete``; the output-grid
rule; the lesion volume kept in ``qc/scans.csv``."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sapkit.config import check_raw_config, load_config
from sapkit.errors import ConfigError
from sapkit.io.nifti import save_nifti
from sapkit.preprocessing.acquisition import model_acquisition
from sapkit.preprocessing.cohort import preprocess
from sapkit.preprocessing.pipeline import load_scan
from sapkit.preprocessing.scan_job import run_scan
from sapkit.preprocessing.stations import LABEL_COLUMNS, load_stations_csv

from raw_cohorts import small_prep, small_raw  # noqa: F401 - fixtures (built once per session, shared)

#: N4 and registration off: the acquisition model runs before them, and the tests stay fast.
FAST = {"raw.n4.enabled": False, "raw.register.enabled": False}
SCAN = "p000_s0"  # the patient of the SMALL cohort
TRUE_LESION_ML = 47 * 0.216  # 47 lesion voxels of 6 mm in the truth


def _config(**raw):
    return load_config("smoke", {**FAST, **{f"raw.{k}": v for k, v in raw.items()}}).raw


def _variant(root: Path, name: str, *, drop=(), replace=None) -> Path:
    """A stations CSV beside the cohort's without the rows ``drop`` ((sequence, station) pairs) and
    with station images (and their labels) replaced: ``replace`` maps (sequence, station) →
    f(array, affine) → (array, affine)."""
    table = pd.read_csv(root / "stations.csv", dtype=str, keep_default_na=False)
    keep = [r.scan_id == SCAN and (r.sequence, int(r.station)) not in drop for r in table.itertuples()]
    table = table[keep].copy()
    for i, row in table.iterrows():
        change = (replace or {}).get((row["sequence"], int(row["station"])))
        if change is None:
            continue
        for col, dtype in [("path", np.float32)] + [(c, np.uint8) for c in LABEL_COLUMNS if row.get(c)]:
            img = nib.load(root / row[col])  # the image and its labels alike
            array, affine = change(np.asarray(img.dataobj, dtype=np.float32), img.affine.copy())
            table.loc[i, col] = path = f"variants/{name}/{Path(row[col]).name}"
            save_nifti(array, affine, root / path, dtype=dtype)
    out = root / f"stations_{name}.csv"
    table.to_csv(out, index=False)
    return out


def _summary(csv: Path, tmp_path: Path, **raw) -> dict:
    """The scan's QC summary from the one-scan job (no cohort tables or figures: fast)."""
    return run_scan(load_stations_csv(csv)[0], _config(**raw), tmp_path / "out", "test")["summary"]


def _model(csv: Path):
    t1, dwi, _ = load_scan(load_stations_csv(csv)[0], labels=False)
    return model_acquisition(t1, dwi)


def test_intact_subject_is_ok_with_every_lesion_voxel_kept(small_raw, small_prep):
    model = _model(_variant(small_raw, "intact"))
    assert model.status == "ok" and model.defects == ()
    assert [round(e.lo_mm) for e in model.t1] == [120, 30, -60, -150, -240]  # voxel boxes, head first
    assert min(s.r for s in model.seams if s.sequence == "t1") > 0.99
    assert min(s.r for s in model.seams if s.sequence == "dwi") > 0.75  # noisier, 12 × 12 × 9 mm, shifted
    scans = pd.read_csv(small_prep / "qc" / "scans.csv").set_index("scan_id")  # sapkit preprocess, default settings
    assert scans["status"].tolist() == ["ok", "ok"] and scans["acquisition"].tolist() == ["ok", "ok"]
    assert scans["lesion_ml"].isna()["h000_s0"]  # healthy: no lesion label, no volume
    row = scans.loc[SCAN]
    assert (row.spacing_mm, row.grid_rule) == ("6 6 6", "finest T1 spacing per axis")
    assert row.lesion_ml == pytest.approx(TRUE_LESION_ML) and row.lesion_ml_source == pytest.approx(TRUE_LESION_ML)
    assert row.lesion_kept == 1.0


def test_missing_t1_station_fails_by_default_or_is_preprocessed_with_a_warning(small_raw, tmp_path):
    csv = _variant(small_raw, "no_t1_st3", drop={("t1", 3)})
    message = ("incomplete: T1 station 3 missing, z −30–30 mm: no T1 station covers it between stations 2 and 3 "
               "(DWI station 3 does); add the station to the input")
    failed = preprocess(csv, tmp_path / "fail", _config(), progress=False)
    row = failed.scans.iloc[0]
    assert row.status == "incomplete" and row.error.startswith(message) and failed.manifest is None
    assert not (tmp_path / "fail" / "scans" / "p000_s0").exists()
    warned = _summary(csv, tmp_path / "warn", on_incomplete="warn")
    assert (warned["status"], warned["acquisition"]) == ("warned", message) and message in warned["warnings"]
    assert (tmp_path / "warn" / "out" / "scans" / "p000_s0" / "p000_s0_t1.nii.gz").is_file()  # preprocessed as acquired


def test_gap_between_stations_is_named_with_its_range(small_raw, tmp_path):
    def up(array, affine):  # the head stations 51 mm higher: 21 mm of T1 and 24 mm of DWI uncovered
        affine[2, 3] += 51.0
        return array, affine

    csv = _variant(small_raw, "gap", replace={("t1", 1): up, ("dwi", 1): up})
    defects = _model(csv).defects
    assert [(d.status, d.kind, d.sequence, d.station) for d in defects] == [
        ("incomplete", "gap", "t1", 1), ("incomplete", "gap", "dwi", 1)]
    assert defects[0].message.startswith("incomplete: gap of 21.0 mm between T1 stations 1 and 2, z 150–171 mm")
    assert defects[0].range_mm == pytest.approx((150.0, 171.0))
    assert _summary(csv, tmp_path)["status"] == "incomplete"


def test_dwi_station_without_t1_counterpart_and_the_lesion_volume_its_crop_takes(small_raw, tmp_path):
    csv = _variant(small_raw, "no_t1_st5", drop={("t1", 5)})
    row = _summary(csv, tmp_path / "fail")
    assert row["status"] == "incomplete"
    assert row["error"].startswith("incomplete: DWI station 5 has no T1 counterpart at the feet end, z −239–−150 mm not "
                                "covered by T1 (the output grid is the T1 stations' union: this part would be cropped away)")
    kept = _summary(csv, tmp_path / "keep", on_incomplete="keep")  # processed as acquired: the crop shows
    assert (kept["status"], kept["acquisition"]) == ("ok", row["error"].split(" (scan p000_s0")[0])  # keep: recorded, not flagged
    assert not any("no T1 counterpart" in w for w in kept["warnings"]) and kept["lesion_ml"] == pytest.approx(TRUE_LESION_ML * 38 / 47)  # 9 of 47 voxels lost


def test_one_missing_dicom_slice_is_named_not_split_silently(small_raw, tmp_path):
    dicom = tmp_path / "dicom"
    shutil.copytree(small_raw / "dicom" / "p000", dicom / "p000")
    next(dicom.glob("*/*/004_WB_T1_st3")).joinpath("IM00010.dcm").unlink()  # one slice of T1 station 3
    row = preprocess(dicom, tmp_path / "out", _config(converter="simpleitk"), progress=False).scans.iloc[0]
    assert row.status == "incomplete"
    assert row.error.startswith("incomplete: T1 station 3 missing 1 slice, z 0–6 mm: the series "
                                "'series 4 WB T1 tse station 3' jumps there and was cut in two (stations 3 and 4)")


@pytest.mark.parametrize("sequence, axis, name", [("t1", 1, "Y (back-front)"), ("t1", 2, "Z (feet-head)"),
                                                  ("dwi", 2, "Z (feet-head)")])
def test_station_mirrored_against_its_header_is_found_from_its_seams(small_raw, tmp_path, sequence, axis, name):
    mirror = lambda array, affine: (np.flip(array, axis).copy(), affine)  # noqa: E731
    replace = {(sequence, 3): mirror} if sequence == "t1" else {("dwi", 3): mirror}
    csv = _variant(small_raw, f"mirror_{sequence}{axis}", replace=replace)
    defects = _model(csv).defects
    assert len(defects) == 1 and (defects[0].status, defects[0].kind, defects[0].station) == ("inconsistent", "mirrored", 3)
    z = "z −60–60 mm" if sequence == "t1" else "z −59–59 mm"
    assert defects[0].message.startswith(f"inconsistent: {sequence.upper() if sequence == 'dwi' else 'T1'} station 3 "
                                         f"voxels are mirrored along {name} against its header, {z}")
    stored, mirrored = (float(v) for v in defects[0].detail.split("r = ")[1].split(" mirrored")[0].split(" as stored, "))
    assert stored < 0.3 and mirrored > 0.8


def _coarse_in_plane(array, affine):
    """Station 1 exported at 12 × 12 mm in plane (every other voxel; same box edges)."""
    out = affine.copy()
    out[:2, :2] *= 2
    out[:2, 3] += 3.0 * np.sign(np.diag(affine)[:2])
    return array[::2, ::2], out


def test_spacing_outlier_is_named_and_the_first_file_no_longer_decides_the_grid(small_raw, tmp_path):
    csv = _variant(small_raw, "coarse_st1", replace={("t1", 1): _coarse_in_plane})
    row = _summary(csv, tmp_path / "fail")
    assert row["status"] == "inconsistent"
    assert row["error"].startswith("inconsistent: T1 station 1 has 12×12×6 mm voxels, the other T1 stations 6×6×6 mm, "
                                   "z 120–240 mm")
    kept = _summary(csv, tmp_path / "keep", on_incomplete="keep")  # station 1 first: before, the grid was 12 mm
    assert (kept["spacing_mm"], kept["shape"], kept["grid_rule"]) == ("6 6 6", "38x20x80", "finest T1 spacing per axis")
    chosen = _summary(_variant(small_raw, "intact"), tmp_path / "spacing", spacing=[12.0])
    assert (chosen["spacing_mm"], chosen["shape"], chosen["grid_rule"]) == ("12 12 12", "19x10x40", "raw.spacing")


def test_policy_and_spacing_values_are_checked():
    assert load_config("smoke").raw.on_incomplete == "fail" and load_config("smoke").raw.spacing == ()
    with pytest.raises(ConfigError, match="on_incomplete"):
        load_config("smoke", {"raw.on_incomplete": "ignore"})
    with pytest.raises(ConfigError, match=r"raw.spacing must be empty"):
        check_raw_config(load_config("smoke", {"raw.spacing": [1.0, 2.0]}).raw)

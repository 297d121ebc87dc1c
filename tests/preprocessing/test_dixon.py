"""Dixon water and fat images carried beside the T1 (issue 24, "What the authors' pipeline does").

The SMALL cohort's healthy scan gets a Dixon acquisition made from its raw T1 stations: on every
station, water = (1 − FF) · in-phase and fat = FF · in-phase, FF a known fat fraction per tissue of
the phantom's truth. The corrections taken from the in-phase station (N4 field, station factor) are
multiplicative and the stations lie on the output grid, so on that grid water must equal
(1 − FF) · T1 and fat FF · T1 voxel for voxel (float32 rounding aside; DICOM adds the 12-bit
quantisation of the water and fat series). Both input routes, the manifest columns, ``sapkit
check``, a class missing a station, and scans without Dixon (unchanged) are tested.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from raw_cohorts import small_prep, small_raw  # noqa: F401 - fixtures (built once per session, shared)
from sapkit.cli import main
from sapkit.config import N4Config, RawConfig, RegisterConfig
from sapkit.data.manifest import REQUIRED_COLUMNS, load_manifest
from sapkit.data.phantom._anatomy import Tissue
from sapkit.data.phantom.dicom_writer import SeriesTags, write_dicom_series
from sapkit.errors import ManifestError
from sapkit.io.folders import PreprocessDir
from sapkit.io.nifti import save_nifti
from sapkit.preprocessing.cohort import SCAN_COLUMNS, preprocess
from sapkit.preprocessing.pipeline import preprocess_scan
from sapkit.preprocessing.rules import load_rules
from sapkit.preprocessing.stations import load_stations_csv

SCAN = "h000_s0"
#: Fat fraction per phantom tissue (the rest 0.1): fat 0.9, marrow 0.6, muscle 0.05.
FAT_FRACTION = np.full(len(Tissue), 0.1, np.float32)
FAT_FRACTION[[Tissue.AIR, Tissue.FAT, Tissue.MARROW, Tissue.MUSCLE]] = [0.0, 0.9, 0.6, 0.05]
FAST = RawConfig(n4=N4Config(enabled=False), register=RegisterConfig(enabled=False))


def _array(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


@pytest.fixture(scope="module")
def dixon(small_raw, tmp_path_factory) -> dict:
    """Water/fat stations of SCAN as float32 NIfTI (stations.csv; stations_partial.csv lacks water
    station 3) and as DICOM series beside the cohort's DICOM tree (``dicom/``)."""
    root = tmp_path_factory.mktemp("dixon")
    truth = pd.read_csv(small_raw / "truth" / "stations.csv")
    tissue = np.asarray(nib.load(str(small_raw / "truth" / f"{SCAN}_tissue.nii.gz")).dataobj).astype(int)
    rows = pd.read_csv(small_raw / "stations.csv", dtype=str, keep_default_na=False)
    rows = rows[rows["scan_id"] == SCAN].copy()
    for col in ("path", "skeleton_label", "fine_label", "lesion_label"):
        rows[col] = [os.path.relpath(small_raw / p, root) if p else "" for p in rows[col]]
    shutil.copytree(small_raw / "dicom", root / "dicom")
    study = next((root / "dicom" / "h000").iterdir())
    added, slopes = [], {}
    for k, st in truth[(truth["scan_id"] == SCAN) & (truth["sequence"] == "t1")].iterrows():
        n = int(st["station"])
        image = nib.load(str(small_raw / "nifti" / SCAN / f"t1_st{n}.nii.gz"))
        in_phase = np.asarray(image.dataobj, dtype=np.float32)
        ff = FAT_FRACTION[tissue[:, :, int(st["slab_start"]):int(st["slab_stop"])]]
        header = pydicom.dcmread(next((study / f"{n + 1:03d}_WB_T1_st{n}").iterdir()), stop_before_pixels=True)
        for cls, fraction, name, image_type in (
                ("water", 1 - ff, f"WB Dixon W station {n}", ("DERIVED", "PRIMARY", "DIXON", "WATER")),  # ImageType
                ("fat", ff, f"WB_Dixon_F_st{n}", ("ORIGINAL", "PRIMARY", "M", "ND"))):  # by name
            values = (fraction * in_phase).astype(np.float32)
            path = root / "nifti" / f"{cls}_st{n}.nii.gz"
            save_nifti(values, image.affine, path, dtype=np.float32)
            added.append({**rows.iloc[0].to_dict(), "sequence": cls, "station": str(n), "path": str(path.relative_to(root)),
                          "skeleton_label": "", "fine_label": "", "lesion_label": ""})
            number = 20 + 2 * n + (cls == "fat")
            tags = SeriesTags(str(header.PatientID), str(header.StudyInstanceUID), f"1.2.826.0.1.3680043.9.7.{number}",
                              str(header.FrameOfReferenceUID), number, name, image_type, str(header.StudyDate),
                              institution=str(header.InstitutionName))
            _, slopes[(cls, n)] = write_dicom_series({None: values}, image.affine, study / f"{number:03d}_{cls}_st{n}", tags=tags)
    table = pd.concat([rows, pd.DataFrame(added)], ignore_index=True)
    table.to_csv(root / "stations.csv", index=False)
    table[~((table["sequence"] == "water") & (table["station"] == "3"))].to_csv(root / "stations_partial.csv", index=False)
    return {"root": root, "slopes": slopes, "tissue": tissue}


@pytest.fixture(scope="module")
def nifti_prep(dixon, tmp_path_factory) -> Path:
    """SCAN with its Dixon stations, from the stations CSV, default settings."""
    out = tmp_path_factory.mktemp("dixon_prep") / "nifti"
    preprocess(dixon["root"] / "stations.csv", out, progress=False)
    return out


@pytest.fixture(scope="module")
def dicom_prep(dixon, tmp_path_factory) -> Path:
    """The DICOM tree (SCAN with Dixon series, the patient scan without), N4 and registration off (fast)."""
    out = tmp_path_factory.mktemp("dixon_prep") / "dicom"
    preprocess(dixon["root"] / "dicom", out, FAST, progress=False)
    return out


def _deviation(out: Path, tissue: np.ndarray) -> tuple[float, float, float]:
    """max |water − (1 − FF)·T1|, max |fat − FF·T1| on the output grid, and max T1."""
    files = PreprocessDir(out)
    t1 = _array(files.scan_file(SCAN, "t1"))
    ff = FAT_FRACTION[tissue]
    water, fat = _array(files.scan_file(SCAN, "dixon_water")), _array(files.scan_file(SCAN, "dixon_fat"))
    return float(np.abs(water - (1 - ff) * t1).max()), float(np.abs(fat - ff * t1).max()), float(t1.max())


def test_stitched_water_and_fat_are_the_known_fractions_of_the_t1(dixon, nifti_prep):
    files = PreprocessDir(nifti_prep)
    t1 = nib.load(str(files.scan_file(SCAN, "t1")))
    for key in ("dixon_water", "dixon_fat"):  # the T1's grid
        image = nib.load(str(files.scan_file(SCAN, key)))
        assert image.shape == t1.shape and np.array_equal(image.affine, t1.affine)
    water, fat, top = _deviation(nifti_prep, dixon["tissue"])
    assert water < 1e-5 * top and fat < 1e-5 * top, (water, fat, top)  # N4 field and factor of the in-phase station


def test_dixon_leaves_the_t1_path_unchanged_and_a_cohort_without_dixon_as_it_was(nifti_prep, small_prep):
    ours, before = PreprocessDir(nifti_prep), PreprocessDir(small_prep)
    for key in ("t1", "b1000", "adc", "skeleton", "fine"):  # bit for bit: Dixon images take nothing from the T1 path
        assert ours.scan_file(SCAN, key).read_bytes() == before.scan_file(SCAN, key).read_bytes(), key
    plain = pd.read_csv(before.manifest_csv, dtype=str, keep_default_na=False)  # small_prep: no Dixon in the input
    assert list(plain.columns) == list(REQUIRED_COLUMNS) + ["fine_label", "adc"]
    assert list(pd.read_csv(before.table("scans")).columns) == list(SCAN_COLUMNS)
    assert not any("dixon" in p.name for p in before.scan_dir(SCAN).iterdir())


def test_manifest_lists_water_and_fat_and_check_accepts_it(nifti_prep, capsys):
    manifest = load_manifest(nifti_prep)  # opens every file
    row = manifest.row(SCAN)
    files = PreprocessDir(nifti_prep)
    assert row["dixon_water"] == str(files.scan_file(SCAN, "dixon_water").resolve())
    assert row["dixon_fat"] == str(files.scan_file(SCAN, "dixon_fat").resolve())
    csv = pd.read_csv(files.manifest_csv, dtype=str)
    assert csv.loc[0, "dixon_water"] == f"scans/{SCAN}/{SCAN}_dixon_water.nii.gz"  # relative, like the others
    scans = pd.read_csv(files.table("scans"), dtype=str, keep_default_na=False)
    assert scans.loc[0, "dixon"] == "water; fat" and scans.loc[0, "status"] == "ok"
    assert main(["check", str(nifti_prep)]) == 0
    capsys.readouterr()


def test_dicom_route_classifies_and_stitches_water_and_fat(dixon, dicom_prep):
    series = pd.read_csv(PreprocessDir(dicom_prep).table("series"), dtype=str, keep_default_na=False)
    by_class = series.groupby("sequence")["reason"].agg(set).to_dict()
    assert by_class["water"] == {"rule: Dixon water image"} and by_class["fat"] == {"rule: Dixon fat image by name"}
    stations = pd.read_csv(PreprocessDir(dicom_prep).table("stations"))
    factors = stations[(stations["scan_id"] == SCAN) & (stations["sequence"] == "t1")]["isis_factor"]
    water, fat, top = _deviation(dicom_prep, dixon["tissue"])
    for cls, found in (("water", water), ("fat", fat)):  # 12-bit quantisation (half a step) × the station factor
        bound = 0.5 * max(float(s) for (c, _), s in dixon["slopes"].items() if c == cls) * float(factors.max())
        assert found <= bound * 1.001 + 1e-5 * top, (cls, found, bound)
    manifest = pd.read_csv(PreprocessDir(dicom_prep).manifest_csv, dtype=str, keep_default_na=False).set_index("scan_id")
    assert manifest.loc["p000_s0", "dixon_water"] == "" and manifest.loc["p000_s0", "dixon_fat"] == ""  # no Dixon there
    scans = pd.read_csv(PreprocessDir(dicom_prep).table("scans"), dtype=str, keep_default_na=False).set_index("scan_id")
    assert scans.loc[SCAN, "dixon"] == "water; fat" and scans.loc["p000_s0", "dixon"] == ""


def test_a_missing_water_station_leaves_water_out_with_the_reason(dixon):
    source = load_stations_csv(dixon["root"] / "stations_partial.csv")[0]
    processed = preprocess_scan(source, FAST)
    note = processed.summary["dixon"]
    assert set(processed.dixon) == {"fat"}  # never a part-volume of water
    assert note.startswith("water left out: T1 station 3 (z ") and note.endswith("has no water image on its grid; fat")
    assert any(w.startswith("water left out") for w in processed.summary["warnings"])


def test_rules_and_stations_csv_name_the_dixon_classes(tmp_path, dixon):
    assert load_rules().classify(modality="MR", texts=("Dixon_noBH_W",), image_type=(), has_b_value=False)[0] == "water"
    old = tmp_path / "rules.yaml"  # a user's rules file from before water/fat: still loads
    old.write_text("rules:\n  - {name: T1, sequence: t1, description: ['t1']}\n"
                   "  - {name: diffusion, sequence: dwi, has_b_value: true}\n"
                   "  - {name: anything else, sequence: ignore, description: ['.']}\n")
    assert load_rules(old).classify(modality="MR", texts=("Dixon_noBH_W",), image_type=(), has_b_value=False) == \
        ("ignore", "rule: anything else")
    table = pd.read_csv(dixon["root"] / "stations.csv", dtype=str, keep_default_na=False)
    table.loc[table["sequence"] == "water", "b_value"] = "0"
    table.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ManifestError, match="water row has b_value '0'; leave it empty"):
        load_stations_csv(tmp_path / "bad.csv")

"""Enhanced (multi-frame) mDixon: one file per station holding in-phase, opposed-phase, water and fat frames.

The sort splits such a series into one sub-series per frame class (FrameType value 4), the files of
each carry that class to the conversion (``FrameFile``), and a whole-body preprocess of the Enhanced
export gives the water and fat the classic export (one series per class, classified by ImageType)
gives. The data: a smooth body, fat fraction FF in [0.15, 0.85], water = (1 − FF)·IP, fat = FF·IP,
opposed = |1 − 2·FF|·IP, each class stored in 12 bits with its own RescaleSlope; the Enhanced
frames are the classic slices byte for byte (per-frame rescale), so every difference between the
two routes is the converter's (dcm2niix scales in float32: < 1e-6 relative).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from dicom_builders import enhanced_from_classic
from sapkit.config import N4Config, RawConfig, RegisterConfig
from sapkit.data.phantom.dicom_writer import SeriesTags, write_dicom_series
from sapkit.errors import SapkitError
from sapkit.io.folders import PreprocessDir
from sapkit.preprocessing.cohort import preprocess
from sapkit.preprocessing.convert import convert_dicom
from sapkit.preprocessing.dicom import scan_dicom_tree
from sapkit.preprocessing.enhanced import FrameFile, FrameSelector
from sapkit.preprocessing.rules import load_rules

RULES = load_rules()
FAST = RawConfig(n4=N4Config(enabled=False), register=RegisterConfig(enabled=False))
T1_SPACING = np.array([4.0, 4.0, 6.0])  # mm
T1_SHAPE = (20, 14, 12)  # voxels per station; stations overlap by 3 slices
DWI_SPACING = np.array([8.0, 8.0, 12.0])
CLASSES = ("IN_PHASE", "OUT_PHASE", "WATER", "FAT")
STUDY, FRAME = "1.2.826.0.1.3680043.9.8.1", "1.2.826.0.1.3680043.9.8.2"


def _world(affine: np.ndarray, shape) -> list[np.ndarray]:
    idx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    return [affine[d, d] * idx[d] + affine[d, 3] for d in range(3)]


def _body(affine: np.ndarray, shape, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """In-phase signal and fat fraction of a smooth elliptic body (world mm, RAS) on one grid."""
    x, y, z = _world(affine, shape)
    r = np.sqrt((x / 32.0) ** 2 + (y / 22.0) ** 2)
    inside = 1.0 / (1.0 + np.exp((r - 1.0) * 12.0))
    ip = scale * inside * (300.0 + 80.0 * np.sin(z / 37.0) + 60.0 * np.cos(x / 15.0))
    ff = 0.15 + 0.7 * (0.5 + 0.5 * np.sin(x / 11.0 + z / 29.0) * np.cos(y / 9.0))
    return ip, ff


def _class_images(ip: np.ndarray, ff: np.ndarray) -> dict[str, np.ndarray]:
    return {"IN_PHASE": ip, "OUT_PHASE": np.abs(1 - 2 * ff) * ip, "WATER": (1 - ff) * ip, "FAT": ff * ip}


def _t1_affine(station: int) -> np.ndarray:
    """Station 1 = head end (highest z)."""
    affine = np.diag(np.r_[T1_SPACING, 1.0])
    affine[:3, 3] = [-38.0, -26.0, (3 - station) * 9 * T1_SPACING[2] - 90.0]
    return affine


def _tags(number: int, description: str, image_type: tuple[str, ...]) -> SeriesTags:
    return SeriesTags("MD1", STUDY, f"1.2.826.0.1.3680043.9.8.{100 + number}", FRAME, number, description, image_type)


def _dixon_station(folder: Path, station: int, *, scale: float = 1.0) -> dict:
    """The four classes of one station as classic series (``folder/classic``); files and slopes per class."""
    affine = _t1_affine(station)
    ip, ff = _body(affine, T1_SHAPE, scale)
    out = {"affine": affine, "files": {}, "slopes": {}}
    for k, (cls, image) in enumerate(_class_images(ip, ff).items()):
        number = 10 * station + k
        tags = _tags(number, f"WB mDixon {cls.lower()} st{station}", ("DERIVED", "PRIMARY", "DIXON", cls))
        out["files"][cls], out["slopes"][cls] = write_dicom_series({None: image}, affine, folder / f"{number:03d}_{cls}",
                                                                   tags=tags)
    return out


def _enhanced_station(station: dict, folder: Path, number: int, classes=CLASSES, extra: dict | None = None) -> Path:
    """One Enhanced file: the classes' slices interleaved slice by slice (IP, OP, W, F, IP, …)."""
    files = {**{c: station["files"][c] for c in classes}, **(extra or {})}
    order = [(cls, k) for k in range(T1_SHAPE[2]) for cls in files]
    frame_types = [("DERIVED", "PRIMARY", "DIXON", cls) for cls, _ in order]
    return enhanced_from_classic([files[c][k] for c, k in order], folder, per_frame_b=False, frame_types=frame_types,
                                 image_type=("DERIVED", "PRIMARY", "DIXON", "MIXED"),
                                 series_uid=f"1.2.826.0.1.3680043.9.8.{900 + number}", name=f"mdixon_{number}.dcm")


def _decoded(files: list[Path]) -> np.ndarray:
    """Classic slices (head first) as stored × slope, on RAS voxel axes (x, y, z increasing)."""
    slices = [pydicom.dcmread(f) for f in files]
    stack = np.stack([s.pixel_array.astype(np.float64) * float(s.RescaleSlope) for s in slices[::-1]], axis=-1)
    return stack.transpose(1, 0, 2)[::-1, ::-1, :]  # rows run P (y), columns L (x): flip to R, A


@pytest.fixture(scope="module")
def one_station(tmp_path_factory) -> dict:
    """Station 1 as classic series and as one Enhanced file (plus one with T2_STAR frames too)."""
    root = tmp_path_factory.mktemp("mdixon_one")
    station = _dixon_station(root / "classic", 1)
    station["enhanced"] = _enhanced_station(station, root / "enhanced", 1)
    t2star = _dixon_station(root / "t2star_source", 2)["files"]["OUT_PHASE"][:T1_SHAPE[2]]  # any 12 slices, other grid
    station["with_unknown"] = enhanced_from_classic(
        [f for k in range(T1_SHAPE[2]) for f in (station["files"]["IN_PHASE"][k], station["files"]["WATER"][k],
                                                 station["files"]["FAT"][k], t2star[k])],
        root / "unknown", per_frame_b=False, name="mdixon_t2star.dcm",
        frame_types=[("DERIVED", "PRIMARY", "DIXON", c) for _ in range(T1_SHAPE[2]) for c in ("IN_PHASE", "WATER", "FAT", "T2_STAR")],
        image_type=("DERIVED", "PRIMARY", "DIXON", "MIXED"), series_uid="1.2.826.0.1.3680043.9.8.999")
    station["root"] = root
    return station


def test_mixed_series_splits_into_one_entry_per_class(one_station):
    inv = scan_dicom_tree(one_station["enhanced"].parent, RULES)
    rows = inv.series.set_index("image_type")
    assert len(inv.series) == 4 and inv.series["series_uid"].nunique() == 1 and (inv.series["n_files"] == 1).all()
    assert {k.split("\\")[3]: v for k, v in rows["sequence"].items()} == \
        {"IN_PHASE": "t1", "OUT_PHASE": "ignore", "WATER": "water", "FAT": "fat"}
    assert rows.loc["DERIVED\\PRIMARY\\DIXON\\WATER", "reason"] == "Enhanced frames of class WATER: rule: Dixon water image"
    assert {k.split("\\")[3]: int(v) for k, v in rows["n_stacks"].items()} == {"IN_PHASE": 1, "OUT_PHASE": 0, "WATER": 1, "FAT": 1}
    (scan,) = inv.scans
    assert scan.problems == ("scan MD1_s0 has no dwi series; check rules.yaml (qc/series.csv lists every series and why)",)
    by_seq = {s.sequence: s for s in scan.stations}
    assert sorted(by_seq) == ["fat", "t1", "water"] and len(scan.stations) == 3
    for seq, cls in (("t1", "IN_PHASE"), ("water", "WATER"), ("fat", "FAT")):
        ((b, (f,)),) = by_seq[seq].images
        assert b is None and f == str(one_station["enhanced"]) and f.frames == FrameSelector(None, cls)
        assert by_seq[seq].description.endswith(f"[{cls} frames]")
    again = pickle.loads(pickle.dumps(scan))  # scans go to worker processes: the selection travels
    assert again.stations[0].images[0][1][0].frames == scan.stations[0].images[0][1][0].frames


@pytest.mark.parametrize("converter", ["dcm2niix", "simpleitk"])
def test_water_frames_read_back_bit_for_bit_on_the_in_phase_grid(one_station, converter):
    stations = {s.sequence: s for s in scan_dicom_tree(one_station["enhanced"].parent, RULES).scans[0].stations}
    volumes = {seq: convert_dicom(st.images[0][1], converter=converter, what=seq) for seq, st in stations.items()}
    water, affine = volumes["water"]
    expected = _decoded(one_station["files"]["WATER"])
    assert water.shape == T1_SHAPE and water.dtype == np.float32
    assert np.array_equal(water, expected.astype(np.float32))  # the water frames (stored × slope), no other class's
    classic, classic_affine = convert_dicom([str(f) for f in one_station["files"]["WATER"]], converter=converter, what="w")
    assert np.array_equal(affine, volumes["t1"][1]) and np.array_equal(affine, classic_affine)  # one grid, to the bit
    assert float(np.abs(water - classic).max()) <= 1e-6 * float(classic.max())
    # water + fat = in-phase up to the 12-bit rounding of each class (half a step each)
    bound = 0.5 * sum(float(one_station["slopes"][c]) for c in ("WATER", "FAT", "IN_PHASE"))
    deviation = float(np.abs(volumes["water"][0] + volumes["fat"][0] - volumes["t1"][0]).max())
    assert deviation <= bound * 1.0001 and bound < 1e-3 * float(volumes["t1"][0].max()), (deviation, bound)


def test_unknown_frame_class_is_listed_and_a_whole_mixed_file_is_refused(one_station):
    inv = scan_dicom_tree(one_station["with_unknown"].parent, RULES)
    row = inv.series[inv.series["image_type"].str.endswith("T2_STAR")].iloc[0]
    assert row["sequence"] == "unknown" and row["n_stacks"] == 0  # the name rule (…mDixon… → T1) not applied
    assert row["reason"].startswith("Enhanced frames of class T2_STAR: not one of the classes the kit sorts")
    assert sorted(s.sequence for s in inv.scans[0].stations) == ["fat", "t1", "water"]
    water = next(s for s in inv.scans[0].stations if s.sequence == "water")
    volume, _ = convert_dicom(water.images[0][1], what="water")
    assert np.array_equal(volume, _decoded(one_station["files"]["WATER"]).astype(np.float32))
    with pytest.raises(SapkitError, match=r"frames of 4 image classes \(FAT, IN_PHASE, OUT_PHASE, WATER\) in one image"):
        convert_dicom([str(one_station["enhanced"])], converter="simpleitk", what="whole file")
    with pytest.raises(SapkitError, match="water at b=50: no frame with b = 50 s/mm² of class WATER in"):
        convert_dicom([FrameFile(str(one_station["enhanced"]), FrameSelector(50.0, "WATER"))], what="water at b=50")


@pytest.fixture(scope="module")
def whole_body(tmp_path_factory) -> dict:
    """Three stations, DWI b50/b1000 on a coarser grid, Dixon as classic series and as Enhanced files; preprocessed."""
    root = tmp_path_factory.mktemp("mdixon_wb")
    classic, enhanced = root / "classic", root / "enhanced"
    for n, scale in ((1, 1.0), (2, 1.25), (3, 0.85)):
        station = _dixon_station(classic, n, scale=scale)
        _enhanced_station(station, enhanced, n)
        dwi_shape = (10, 7, 5)
        d_affine = np.diag(np.r_[DWI_SPACING, 1.0])
        centre = station["affine"][:3, 3] + (np.array(T1_SHAPE) - 1) / 2 * T1_SPACING
        d_affine[:3, 3] = centre - (np.array(dwi_shape) - 1) / 2 * DWI_SPACING
        ip, _ = _body(d_affine, dwi_shape, scale)
        tags = _tags(50 + n, f"WB DWI b50 b1000 st{n}", ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"))
        write_dicom_series({50.0: 2.0 * ip, 1000.0: 0.6 * ip}, d_affine, classic / f"{50 + n:03d}_dwi", tags=tags)
        shutil.copytree(classic / f"{50 + n:03d}_dwi", enhanced / f"{50 + n:03d}_dwi")
    outs = {}
    for form in ("classic", "enhanced"):
        outs[form] = root / f"prep_{form}"
        preprocess(root / form, outs[form], FAST, progress=False)
    return outs


def test_whole_body_enhanced_mdixon_equals_the_classic_export(whole_body):
    images = {}
    for form, out in whole_body.items():
        manifest = pd.read_csv(PreprocessDir(out).manifest_csv, dtype=str, keep_default_na=False)
        assert len(manifest) == 1 and manifest.loc[0, "dixon_water"] and manifest.loc[0, "dixon_fat"], form
        series = pd.read_csv(PreprocessDir(out).table("series"), dtype=str, keep_default_na=False)
        assert (series["sequence"].value_counts().to_dict() ==
                {"t1": 3, "water": 3, "fat": 3, "ignore": 3, "dwi": 3}), (form, series["sequence"].value_counts())
        images[form] = {key: nib.load(str(out / manifest.loc[0, key])) for key in ("t1", "dixon_water", "dixon_fat")}
    for key in ("t1", "dixon_water", "dixon_fat"):
        a, b = images["classic"][key], images["enhanced"][key]
        assert a.shape == b.shape and np.array_equal(a.affine, b.affine), key
        x, y = np.asarray(a.dataobj, dtype=np.float64), np.asarray(b.dataobj, dtype=np.float64)
        assert x.max() > 0 and float(np.abs(x - y).max()) <= 1e-4 * float(np.abs(x).max()), key

"""Station-to-station DWI registration (``raw.register.dwi_stations``; sapkit/preprocessing/station_registration.py).

Three DWI stations are cut from one smooth random volume (the "T1" truth, 4 mm grid, z 0–260 mm)
onto an 8 × 8 × 6 mm grid, 102 mm tall with 22 mm overlaps, each with its content moved by a known
vector (RAS+ mm, the synthetic raw cohort's convention: the content sits at truth position + shift).
For the pipeline, the truth is also cut into three T1 stations (z 0–100, 80–180, 160–260 mm) and
every station written as NIfTI with a stations CSV: one tiny scan, a fraction of a second per run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from sapkit.config import RawConfig, RegisterConfig, check_raw_config, load_config
from sapkit.errors import ConfigError
from sapkit.imaging.resample import resample
from sapkit.io.nifti import save_nifti
from sapkit.preprocessing.geometry import Volume
from sapkit.preprocessing.pipeline import preprocess_scan
from sapkit.preprocessing.station_registration import register_chained, register_pair, station_transform
from sapkit.preprocessing.stations import load_stations_csv


#: True content shifts (mm) of the head, centre and feet station.
SHIFTS = np.array([[3.0, -2.0, 5.0], [-2.0, 1.5, -3.0], [1.0, 3.0, 4.0]])
#: Recovered shifts are within this distance of the truth (mm; DWI voxels are 8 × 8 × 6 mm).
TOLERANCE_MM = 1.0


def _truth() -> Volume:
    rng = np.random.default_rng(7)
    image = ndimage.gaussian_filter(rng.standard_normal((28, 24, 66)), 2.0).astype(np.float32) * 100 + 300
    return Volume(image, np.diag([4.0, 4.0, 4.0, 1.0]))


def _stations(truth: Volume, scales=(1.0, 1.0, 1.0)) -> list[Volume]:
    """Head, centre and feet DWI station of ``truth``, content moved by ``SHIFTS``, times ``scales``."""
    import SimpleITK as sitk

    out = []
    for shift, z0, scale in zip(SHIFTS, (160.0, 80.0, 0.0), scales):
        affine = np.diag([8.0, 8.0, 6.0, 1.0])
        affine[:3, 3] = [4.0, 4.0, z0]
        content = sitk.TranslationTransform(3, (-shift).tolist())  # output x ← truth at x − shift
        moved = resample(truth.array, truth.affine, (13, 11, 18), affine, transform=content)
        out.append(Volume(moved * np.float32(scale), affine))
    return out


def _ones(volume: Volume) -> np.ndarray:
    return np.ones(volume.array.shape, bool)


def _write_scan(folder: Path) -> Path:
    """The truth as 3 T1 stations and its DWI stations (b = 50, and b = 1000 at 0.6 ×) in NIfTI; the stations CSV."""
    truth = _truth()
    rows = ["subject_id,scan_id,sequence,b_value,station,path"]
    for k, (start, stop) in enumerate([(40, 66), (20, 46), (0, 26)]):
        affine = truth.affine.copy()
        affine[2, 3] = start * 4.0
        save_nifti(truth.array[:, :, start:stop], affine, folder / f"t1_{k + 1}.nii.gz")
        rows.append(f"s1,s1_a,t1,,{k + 1},t1_{k + 1}.nii.gz")
    for k, station in enumerate(_stations(truth)):
        for b, factor in ((50, 1.0), (1000, 0.6)):
            save_nifti(station.array * np.float32(factor), station.affine, folder / f"dwi_{k + 1}_b{b}.nii.gz")
            rows.append(f"s1,s1_a,dwi,{b},{k + 1},dwi_{k + 1}_b{b}.nii.gz")
    (folder / "stations.csv").write_text("\n".join(rows) + "\n")
    return folder / "stations.csv"


def test_a_pair_of_stations_gives_their_relative_shift_whatever_their_scales():
    head, centre, _ = _stations(_truth(), scales=(1.4, 1.0, 1.0))
    translation, stop, accepted = register_pair(centre, _ones(centre), head)
    assert accepted, stop
    assert np.linalg.norm(translation - (SHIFTS[0] - SHIFTS[1])) < 0.5  # normalised cross-correlation: scale-free


def test_a_chain_of_stations_recovers_every_known_shift():
    truth = _truth()
    stations = _stations(truth)
    given = [stations[2], stations[0], stations[1]]  # any order in, the same order out
    regs = register_chained(truth, _ones(truth), given, [_ones(s) for s in given],
                            config=RegisterConfig(sampling_fraction=1.0))  # tiny volumes: every voxel in the metric
    errors = [np.linalg.norm(np.array(r.translation_mm) - s) for r, s in zip(regs, SHIFTS[[2, 0, 1]])]
    assert max(errors) < TOLERANCE_MM, errors
    assert all(r.accepted for r in regs)
    assert regs[2].stop.startswith("centre station of the chain")
    assert regs[0].stop.startswith("chained to DWI station 2")


def test_a_station_transform_is_the_whole_body_one_then_the_station_offset():
    import SimpleITK as sitk

    whole = sitk.Euler3DTransform((10.0, 0.0, 0.0), 0.0, 0.0, np.pi / 2, (1.0, 2.0, 3.0))  # 90° about z through x = 10
    transform, translation = station_transform(whole, (0.5, -1.0, 2.0), (10.0, 5.0, 0.0))
    np.testing.assert_allclose(transform.TransformPoint((10.0, 5.0, 0.0)), (10.0 - 5.0 + 1.0 + 0.5, 2.0 - 1.0, 5.0),
                               atol=1e-9)
    np.testing.assert_allclose(translation, (-3.5, -4.0, 5.0), atol=1e-9)
    plain, t = station_transform(sitk.TranslationTransform(3, (1.0, 2.0, 3.0)), (0.5, -1.0, 2.0), (7.0, 7.0, 7.0))
    assert isinstance(plain, sitk.TranslationTransform) and np.allclose(t, (1.5, 1.0, 5.0))


def test_a_pair_beyond_max_shift_keeps_its_neighbours_offset_and_is_flagged():
    truth = _truth()
    stations = _stations(truth)
    regs = register_chained(truth, _ones(truth), stations, [_ones(s) for s in stations],
                            config=RegisterConfig(max_shift_mm=9.0))  # pairs: |Δ| = 10.1 (head), 7.8 mm (feet)
    assert not regs[0].accepted and "rejected" in regs[0].stop
    np.testing.assert_allclose(regs[0].translation_mm, regs[1].translation_mm, atol=1e-9)
    assert regs[1].accepted and regs[2].accepted


def test_none_is_the_default_bit_for_bit_and_chained_changes_only_the_dwi(tmp_path):
    source = load_stations_csv(_write_scan(tmp_path))[0]
    fast = dataclasses.replace(RawConfig(), n4=dataclasses.replace(RawConfig().n4, enabled=False))  # N4: not under test
    default = preprocess_scan(source, fast)
    none = preprocess_scan(source, dataclasses.replace(fast, register=RegisterConfig(dwi_stations="none")))
    chained = preprocess_scan(source, dataclasses.replace(fast, register=RegisterConfig(dwi_stations="chained")))
    for name in ("t1", "b1000", "adc", "affine"):
        assert np.array_equal(getattr(default, name), getattr(none, name)), name
    assert default.stations.drop(columns="shape").equals(none.stations.drop(columns="shape"))
    assert np.array_equal(chained.t1, default.t1) and not np.array_equal(chained.b1000, default.b1000)
    dwi = chained.stations[chained.stations["sequence"] == "dwi"]
    assert dwi["registration_stop"].str.contains("chained to DWI station|centre station of the chain").all()


def test_a_bad_value_of_the_option_is_one_config_error():
    with pytest.raises(ConfigError, match=r"raw\.register\.dwi_stations.*one of \('none', 'chained'\).*'chain'"):
        load_config("smoke", overrides={"raw.register.dwi_stations": "chain"})
    bad = dataclasses.replace(RawConfig(), register=RegisterConfig(dwi_stations="both"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"raw\.register\.dwi_stations"):
        check_raw_config(bad)

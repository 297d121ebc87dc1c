"""``sapkit preprocess`` and ``sapkit synth --raw`` through the console entry point."""

from __future__ import annotations

import shutil

from sapkit.cli import main

from raw_cohorts import small_prep, small_raw  # noqa: F401 - fixtures


def test_preprocess_command_reuses_and_reports(small_raw, small_prep, tmp_path, capsys):
    out = tmp_path / "data"
    shutil.copytree(small_prep / "scans", out / "scans")  # up to date: reused
    assert main(["preprocess", str(small_raw / "stations.csv"), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "h000_s0              reused" in text and "2 of 2 scans preprocessed" in text
    assert f"wrote {out / 'manifest.yaml'}" in text
    assert main(["check", str(out)]) == 0


def test_preprocess_command_errors_are_one_line(small_raw, tmp_path, capsys):
    assert main(["preprocess", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 1
    assert "is neither a DICOM folder nor a stations CSV" in capsys.readouterr().err
    assert main(["preprocess", str(small_raw / "stations.csv"), "--out", str(tmp_path / "o"),
                 "-p", "raw.register.transform=affine"]) == 1
    assert "config key 'raw.register.transform' must be one of ('translation', 'rigid')" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["preprocess", str(empty), "--out", str(tmp_path / "o2")]) == 1
    assert "no scan with T1 and DWI series found" in capsys.readouterr().err


def test_real_files_without_a_usable_scan_are_listed_in_the_error(tmp_path, capsys):
    """pydicom's shipped MR and CT images: no T1 + DWI scan; the error says how each series was classified."""
    import shutil

    from pydicom.data import get_testdata_file

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("MR_small.dcm", "CT_small.dcm"):
        shutil.copy(get_testdata_file(name), folder / name)
    assert main(["preprocess", str(folder), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "no scan with T1 and DWI series found" in err and "How the series were classified" in err
    assert "-> unused (modality CT is not one of ['MR'])" in err and "-> unknown (no rule matched" in err
    assert "--rules FILE" in err and not (tmp_path / "out").exists()   # nothing written on the way out


def test_synth_raw_writes_both_forms(tmp_path, capsys):
    args = ["synth", "--raw", "--out", str(tmp_path / "raw"), "--no-progress", "-p", "synth.n_healthy_subjects=0",
            "-p", "synth.n_patients=1", "-p", "synth.height_mm=300", "-p", "synth.spacing_mm=8"]
    assert main(args) == 0
    assert "raw cohort (5 stations per sequence)" in capsys.readouterr().out
    assert (tmp_path / "raw" / "stations.csv").is_file() and (tmp_path / "raw" / "labels.csv").is_file()
    assert len(list((tmp_path / "raw" / "dicom" / "p000").glob("*/*_WB_T1_st*"))) == 5

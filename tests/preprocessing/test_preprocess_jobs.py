"""``sapkit preprocess --executor local``: one submitit job per scan, the same outputs as in-process,
failures in the element states, ``--resume`` resubmits only the failed scan."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd

from sapkit.cli import main
from sapkit.io.folders import JobsDir, PreprocessDir

from raw_cohorts import small_prep, small_raw  # noqa: F401 - fixtures


def _stations_with_a_broken_scan(small_raw, folder):
    table = pd.read_csv(small_raw / "stations.csv", dtype=str, keep_default_na=False)
    for col in ("path", "skeleton_label", "fine_label", "lesion_label"):
        table[col] = [str(small_raw / v) if v else "" for v in table[col]]
    bad = table[table["scan_id"] == "h000_s0"].assign(scan_id="bad_s0", subject_id="bad")
    broken = folder / "bad_t1.nii.gz"
    bad.loc[bad.index[0], "path"] = str(broken)
    folder.mkdir()
    broken.write_bytes(b"\x1f\x8b truncated")
    csv = folder / "stations.csv"
    pd.concat([table, bad]).to_csv(csv, index=False)
    return csv, broken, table.loc[table["scan_id"] == "h000_s0"].iloc[0]["path"]


def test_local_executor_gives_the_in_process_volumes_and_resume_reruns_only_the_failure(small_raw, small_prep,
                                                                                        tmp_path, capsys):
    csv, broken, good_t1 = _stations_with_a_broken_scan(small_raw, tmp_path / "in")
    out = tmp_path / "out"
    code = main(["preprocess", str(csv), "--out", str(out), "--executor", "local", "--array-parallelism", "2",
                 "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "2 of 3 scans preprocessed" in text, text
    states = pd.read_csv(JobsDir(PreprocessDir(out).jobs).states_csv).set_index("name")
    assert states["state"].to_dict() == {"h000_s0": "done", "p000_s0": "done", "bad_s0": "failed"}
    assert "bad_t1.nii.gz is not a readable NIfTI" in states.loc["bad_s0", "error"]
    scans = pd.read_csv(PreprocessDir(out).table("scans")).set_index("scan_id")
    assert scans.loc["bad_s0", "status"] == "failed" and "bad_t1.nii.gz" in scans.loc["bad_s0", "error"]
    assert pd.read_csv(out / "manifest.csv")["scan_id"].tolist() == ["h000_s0", "p000_s0"]
    for scan in ("h000_s0", "p000_s0"):  # the same code path as in-process: identical volumes
        for key in ("t1", "b1000"):
            ours = nib.load(PreprocessDir(out).scan_file(scan, key))
            ref = nib.load(PreprocessDir(small_prep).scan_file(scan, key))
            np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(ref.dataobj))
            np.testing.assert_array_equal(ours.affine, ref.affine)

    shutil.copy(good_t1, broken)  # the cause is fixed
    code = main(["preprocess", str(csv), "--out", str(out), "--executor", "local", "--resume", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "3 of 3 scans preprocessed" in text, text
    subs = pd.read_csv(JobsDir(PreprocessDir(out).jobs).submissions_csv)
    assert subs.groupby("name").size().to_dict() == {"bad_s0": 2, "h000_s0": 1, "p000_s0": 1}
    scans = pd.read_csv(PreprocessDir(out).table("scans")).set_index("scan_id")
    assert scans["status"].to_dict() == {"h000_s0": "reused", "p000_s0": "reused", "bad_s0": "ok"}


def test_resume_without_an_executor_is_refused(small_raw, tmp_path, capsys):
    code = main(["preprocess", str(small_raw / "stations.csv"), "--out", str(tmp_path / "o"), "--resume"])
    err = capsys.readouterr().err
    assert code != 0 and "--resume needs --executor" in err and "Traceback" not in err

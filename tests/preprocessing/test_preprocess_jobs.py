"""``sapkit preprocess --executor local``: one submitit job per scan, the same outputs as in-process,
failures in the element states, ``--resume`` resubmits only the failed scan; a named acquisition
defect finishes its element and reads as with ``--jobs``."""

from __future__ import annotations

import os
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


def _stations_with_a_gap_and_a_broken_scan(small_raw, folder):
    """h000_s0; gap_s0 (its copy without T1 station 3: incomplete); bad_s0 (its copy with a truncated T1 file)."""
    table = pd.read_csv(small_raw / "stations.csv", dtype=str, keep_default_na=False)
    for col in ("path", "skeleton_label", "fine_label", "lesion_label"):
        table[col] = [str(small_raw / v) if v else "" for v in table[col]]
    good = table[table["scan_id"] == "h000_s0"]
    gap = good[~((good["sequence"] == "t1") & (good["station"] == "3"))].assign(scan_id="gap_s0", subject_id="gap")
    bad = good.assign(scan_id="bad_s0", subject_id="bad")
    folder.mkdir()
    gap.loc[gap.index[0], "path"] = str(shutil.copy(gap["path"].iloc[0], folder / "gap_first.nii.gz"))  # ours to touch
    bad.loc[bad.index[0], "path"] = str(folder / "bad_t1.nii.gz")
    (folder / "bad_t1.nii.gz").write_bytes(b"\x1f\x8b truncated")
    csv = folder / "stations.csv"
    pd.concat([good, gap, bad]).to_csv(csv, index=False)
    return csv, folder / "gap_first.nii.gz"


def test_a_named_defect_finishes_its_element_as_with_jobs_and_resume_leaves_it(small_raw, small_prep, tmp_path,
                                                                                 capsys):
    csv, gap_file = _stations_with_a_gap_and_a_broken_scan(small_raw, tmp_path / "in")
    out, local = PreprocessDir(tmp_path / "out"), PreprocessDir(tmp_path / "local")
    for d in (out, local):  # h000_s0 is reused: only the defect and the crash run
        shutil.copytree(PreprocessDir(small_prep).scan_dir("h000_s0"), d.scan_dir("h000_s0"))
    jobs = JobsDir(out.jobs)
    args = ["preprocess", str(csv), "--out", str(out.path), "--executor", "local", "--array-parallelism", "2",
            "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "1 of 3 scans preprocessed" in text, text
    assert ["gap_s0", "incomplete"] in [line.split()[:2] for line in text.splitlines()]
    states = pd.read_csv(jobs.states_csv, keep_default_na=False).set_index("name")
    assert states["state"].to_dict() == {"gap_s0": "done", "bad_s0": "failed"}  # the defect is no crash
    assert states.loc["gap_s0", "error"] == "" and "bad_t1.nii.gz" in states.loc["bad_s0", "error"]
    assert pd.read_csv(out.manifest_csv)["scan_id"].tolist() == ["h000_s0"]

    assert main(["preprocess", str(csv), "--out", str(local.path), "--jobs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    ours, theirs = (pd.read_csv(d.table("scans"), dtype=str, keep_default_na=False).drop(columns="seconds")
                    .set_index("scan_id") for d in (out, local))
    assert theirs["status"].to_dict() == {"bad_s0": "failed", "gap_s0": "incomplete", "h000_s0": "reused"}
    pd.testing.assert_frame_equal(ours, theirs)  # every column but the seconds, the message included
    assert ours.loc["gap_s0", "error"].startswith("incomplete: T1 station 3 missing, z −30–30 mm")
    assert pd.read_csv(local.manifest_csv)["scan_id"].tolist() == ["h000_s0"]

    assert main(args + ["--resume"]) == 0  # the crash is resubmitted, the defect is not
    capsys.readouterr()
    assert pd.read_csv(jobs.submissions_csv).groupby("name").size().to_dict() == {"bad_s0": 2, "gap_s0": 1}
    assert pd.read_csv(jobs.states_csv).set_index("name")["state"].to_dict() == {"gap_s0": "done", "bad_s0": "failed"}
    again = pd.read_csv(out.table("scans"), dtype=str, keep_default_na=False).drop(columns="seconds")
    pd.testing.assert_frame_equal(again.set_index("scan_id"), theirs)

    os.utime(gap_file, (1e9, 1e9))  # its inputs changed (digest): its finished element is stale, resubmitted
    assert main(args + ["--resume"]) == 0
    capsys.readouterr()
    assert pd.read_csv(jobs.submissions_csv).groupby("name").size().to_dict() == {"bad_s0": 3, "gap_s0": 2}
    assert pd.read_csv(out.table("scans")).set_index("scan_id")["status"].to_dict() == theirs["status"].to_dict()

"""From raw scans to a trained skeleton model (issue 24, acceptance 4), all through the command line.

DICOM with vendor-style series names (one subject, two scans a month apart; only the first has
skeleton labels) → ``sapkit preprocess`` → ``sapkit check`` (valid, ready for labelling, not for
SAP pretraining, next command printed) → ``sapkit propagate`` (the first scan's labels carried to
the repeat scan) → ``sapkit check`` (ready for SAP pretraining) → the healthy split → ``sapkit train
skeleton`` (smoke profile, one epoch). A 6 mm grid, no N4 and the global registration stage keep it
to seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from sapkit.cli import main
from sapkit.config import RawSynthConfig, SynthConfig
from sapkit.data.manifest import load_manifest
from sapkit.data.splits import save_splits
from sapkit.io.nifti import read_label
from sapkit.metrics import dice_per_group

COHORT = SynthConfig(n_healthy_subjects=1, scans_per_subject=2, n_patients=0, spacing_mm=6.0, height_mm=480.0, seed=5)
FAST = ["--profile", "smoke", "-p", "raw.n4.enabled=false"]


def _vendor_names(dicom: Path) -> dict[str, str]:
    """Rename the series as a Siemens console would export them (WB_T1_st1, ep2d_diff_b50_b1000_st1, AAHead_Scout)."""
    renamed = {}
    for path in sorted(dicom.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        old = str(ds.SeriesDescription)
        words = old.split()
        if old == "localizer":
            new = "AAHead_Scout_32ch-head-coil"
        elif "T1" in words:
            new = f"WB_T1_st{words[-1]}"
        else:
            new = f"ep2d_diff_{'_'.join(w for w in words if w.startswith('b'))}_st{words[-1]}"
        ds.SeriesDescription = ds.ProtocolName = new
        ds.save_as(path)
        renamed[old] = new
    return renamed


def test_raw_dicom_to_skeleton_training(tmp_path, capsys):
    from sapkit.data.phantom.raw import generate_raw_cohort

    raw = generate_raw_cohort(tmp_path / "raw", COHORT, RawSynthConfig(overlap_mm=24.0), forms=("dicom",), progress=False)
    renamed = _vendor_names(raw / "dicom")
    assert "WB_T1_st1" in renamed.values() and "ep2d_diff_b50_b1000_st1" in renamed.values()
    labels = pd.read_csv(raw / "labels.csv", dtype=str, keep_default_na=False)
    first = labels[labels["scan_id"] == "h000_s0"][["scan_id", "station", "skeleton_label"]]
    first.assign(skeleton_label=[str(raw / p) for p in first["skeleton_label"]]).to_csv(tmp_path / "labels.csv", index=False)

    prep, run_dir = tmp_path / "prep", tmp_path / "run"
    assert main(["preprocess", str(raw / "dicom"), "--out", str(prep), "--labels", str(tmp_path / "labels.csv"),
                 "--no-progress", *FAST]) == 0
    series = pd.read_csv(prep / "qc" / "series.csv", keep_default_na=False)
    assert set(series["sequence"]) == {"t1", "dwi", "ignore"}  # every vendor name recognised, the scout ignored
    scans = load_manifest(prep, require_labels=False).scans
    assert scans["scan_id"].tolist() == ["h000_s0", "h000_s1"] and scans["skeleton_label"].str.len().tolist()[1] == 0
    capsys.readouterr()

    assert main(["check", str(prep)]) == 0
    out = capsys.readouterr().out
    assert "OK: 2 scans valid" in out and "ready for: skeleton labelling" in out
    assert "not yet for: SAP pretraining (1 of 2 healthy scans have no skeleton_label)" in out
    assert f"next: sapkit propagate {prep / 'manifest.yaml'}" in out

    labelled = tmp_path / "labelled"
    assert main(["propagate", str(prep), "--out", str(labelled), "--global-only"]) == 0  # per-bone step: +15 s
    man = load_manifest(labelled)  # strict: every healthy scan labelled
    propagated, _, _ = read_label(man.row("h000_s1")["skeleton_label"], what="propagated")
    truth, _, _ = read_label(raw / "truth" / "h000_s1_skeleton.nii.gz", what="truth")
    assert propagated.shape == truth.shape
    bone = {"bone": tuple(range(1, 10))}
    unmoved, _, _ = read_label(raw / "truth" / "h000_s0_skeleton.nii.gz", what="truth s0")  # the labels not registered
    dice, before = dice_per_group(truth, propagated, bone)["bone"], dice_per_group(truth, unmoved, bone)["bone"]
    assert dice > before + 0.1, f"propagated skeleton Dice {dice:.3f}, unregistered {before:.3f}"
    assert Path(man.row("h000_s0")["t1"]) == (prep / "scans" / "h000_s0").resolve() / Path(man.row("h000_s0")["t1"]).name
    capsys.readouterr()
    assert main(["check", str(labelled)]) == 0
    assert "ready for: SAP pretraining (2 labelled healthy scans)" in capsys.readouterr().out

    # `sapkit split` also deals patients into lesion folds; a healthy-only cohort needs just the healthy split
    save_splits({"k": 3, "tuning_fold": 2, "folds": {}, "healthy": {"train": ["h000"], "val": []}, "lesion_counts": {}},
                run_dir)
    assert main(["train", "skeleton", "--data", str(labelled), "--run-dir", str(run_dir), "--profile", "smoke",
                 "-p", "skeleton.epochs=1", "-p", "skeleton.warmup_epochs=0", "-p", "skeleton.samples_per_volume=2"]) == 0
    log = pd.read_csv(run_dir / "skeleton" / "log.csv")
    assert len(log) >= 1 and np.isfinite(log.filter(like="loss").to_numpy(dtype=float)).all()

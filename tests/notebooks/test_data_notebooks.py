"""Notebooks 00 (data) and 01 (skeleton labelling) in the session's smoke series (papermill)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import executed_text


@pytest.fixture(scope="module")
def run_00(smoke_series) -> Path:
    """The smoke series' run folder (notebooks 00 and 01 ran in it)."""
    return smoke_series


def test_notebook_00_generates_validates_and_splits(run_00):
    assert (run_00 / "data" / "manifest.yaml").is_file()
    scans = pd.read_csv(run_00 / "data" / "manifest.csv")
    assert (scans["cohort"] == "healthy").sum() == 4 and (scans["cohort"] == "patient").sum() == 6
    fingerprint = json.loads((run_00 / "fingerprint.json").read_text())
    assert fingerprint["dataset"]["n_scans"] == 10
    assert fingerprint["dataset"]["median_spacing_mm"] == [6.0, 6.0, 6.0]
    splits = json.loads((run_00 / "splits.json").read_text())
    assert sorted(s for f in splits["folds"].values() for s in f) == sorted(scans.loc[scans.cohort == "patient", "subject_id"])
    assert {"config.yaml", "versions.json"} <= {p.name for p in run_00.iterdir()}


def test_notebook_01_propagates_and_writes_qc(run_00):
    labels = run_00 / "labels"
    dice = pd.read_csv(labels / "propagation_dice.csv", index_col=[0, 1])
    assert set(dice.index.get_level_values("stage")) == {"global", "per-bone"}
    assert len(dice) == 4  # 2 subjects × 1 repeat scan × 2 stages
    qc = pd.read_csv(labels / "skeleton_qc.csv")
    assert qc["scan_id"].nunique() == 4 and len(qc) == 4 * 9
    assert len(list(labels.glob("*_skeleton_propagated.nii.gz"))) == 2
    text = executed_text(run_00, "01_skeleton_labelling")
    assert "mapped fine atlas equals the SAP map on file: True" in text

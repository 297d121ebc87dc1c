"""Notebooks 00 (data) and 01 (skeleton labelling) in the session's smoke series (papermill)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import executed_text
from sapkit.io.run_paths import RunDir
from sapkit.label_maps import SKELETON_CLASSES
from sapkit.labels.propagation import FINE_BONE_GROUPS
from sapkit.plotting.colors import BONE_COLORS, REFERENCE_COLOR


def _figures(run_dir: Path, name: str) -> list[dict]:
    """The plotly figures (JSON) among the outputs of an executed notebook of the series."""
    nb = json.loads(RunDir(run_dir).notebook(name).read_text())
    return [o["data"]["application/vnd.plotly.v1+json"] for c in nb["cells"] for o in c.get("outputs", [])
            if "application/vnd.plotly.v1+json" in o.get("data", {})]


@pytest.fixture(scope="module")
def run_00(smoke_series) -> Path:
    """The smoke series' run folder (notebooks 00 and 01 ran in it)."""
    return smoke_series


def test_notebook_00_generates_validates_and_splits(run_00):
    rd = RunDir(run_00)
    assert (rd.data / "manifest.yaml").is_file()
    scans = pd.read_csv(rd.data / "manifest.csv")
    assert (scans["cohort"] == "healthy").sum() == 4 and (scans["cohort"] == "patient").sum() == 6
    fingerprint = json.loads(rd.fingerprint_json.read_text())
    assert fingerprint["dataset"]["n_scans"] == 10
    assert fingerprint["dataset"]["median_spacing_mm"] == [6.0, 6.0, 6.0]
    splits = json.loads(rd.splits_json.read_text())
    assert sorted(s for f in splits["folds"].values() for s in f) == sorted(scans.loc[scans.cohort == "patient", "subject_id"])
    assert rd.config_yaml.is_file() and rd.versions_json.is_file()


def test_notebook_00_figures_use_the_colour_convention(run_00):
    figures = _figures(run_00, "00_data")
    skeleton = next(f for f in figures if "SAP map" in f["layout"]["title"]["text"])
    legend = [(t["name"], t["marker"]["color"]) for t in skeleton["data"] if t.get("showlegend")]
    assert legend == [(SKELETON_CLASSES[k], BONE_COLORS[k]) for k in range(1, 10)]   # named, in label order
    assert not any(t.get("showscale") for f in figures for t in f["data"])            # no continuous colour bar
    lesions = next(f for f in figures if "reference lesions" in f["layout"]["title"]["text"])
    reference = [t for t in lesions["data"] if t.get("name") == "reference"]
    assert len(reference) == 3 and reference[0]["marker"]["color"] == REFERENCE_COLOR


def test_notebook_01_propagates_and_writes_qc(run_00):
    rd = RunDir(run_00)
    dice = pd.read_csv(rd.propagation_dice_csv, index_col=[0, 1])
    assert set(dice.index.get_level_values("stage")) == {"global", "per-bone"}
    assert len(dice) == 2  # n_subjects = 1 by default: 1 subject × 1 repeat scan × 2 stages
    assert list(dice.columns) == list(FINE_BONE_GROUPS) and dice.notna().all().all()
    assert ((dice >= 0) & (dice <= 1)).all().all()
    qc = pd.read_csv(rd.skeleton_qc_csv)
    assert qc["scan_id"].nunique() == 4 and len(qc) == 4 * 9
    assert len(list(rd.labels_dir.glob("*_skeleton_propagated.nii.gz"))) == 1
    for scan_id in dice.index.get_level_values("scan_id").unique():
        assert rd.propagated_label(scan_id, "global").is_file() and rd.propagated_label(scan_id).is_file()
    text = executed_text(run_00, "01_skeleton_labelling")
    assert "mapped fine atlas equals the SAP map on file: True" in text

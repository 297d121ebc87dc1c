"""Notebook 00a and its place in ``sapkit reproduce`` (run first when the profile names raw input)."""

from __future__ import annotations

import json

import pytest

from sapkit.config import load_config
from sapkit.data.manifest import load_manifest
from sapkit.errors import SapkitError
from sapkit.pipeline.reproduce import NOTEBOOKS, RAW_NOTEBOOK, reproduce, series_notebooks

TINY_RAW = {"raw.synthetic": True, "synth.n_healthy_subjects": 1, "synth.scans_per_subject": 1, "synth.n_patients": 1,
            "synth.height_mm": 480.0, "raw.synth.overlap_mm": 24.0}


def test_series_starts_with_00a_only_for_raw_input():
    assert series_notebooks(load_config("smoke")) == NOTEBOOKS
    assert series_notebooks(load_config("smoke", {"raw.synthetic": True})) == (RAW_NOTEBOOK,) + NOTEBOOKS
    assert series_notebooks(load_config("smoke", {"raw.input": "/scans/dicom"}))[0] == RAW_NOTEBOOK
    with pytest.raises(SapkitError, match=r"choose from 00_data, .*00a_preprocessing runs when the profile names raw input"):
        reproduce("smoke", None, notebooks=[RAW_NOTEBOOK], progress=False)


@pytest.mark.slow
def test_reproduce_runs_00a_into_run_dir_data_and_hands_it_to_the_series(tmp_path):
    run_dir = tmp_path / "run"
    results = reproduce("smoke", run_dir, TINY_RAW, notebooks=[RAW_NOTEBOOK], progress=False)
    assert [(r.name, r.status) for r in results] == [(RAW_NOTEBOOK, "ran")]
    text = (run_dir / "notebooks" / f"{RAW_NOTEBOOK}.ipynb").read_text()
    assert "stitched T1 vs truth r" in text and '"output_type": "error"' not in text
    marker = json.loads((run_dir / "notebooks" / f"{RAW_NOTEBOOK}.done.json").read_text())
    assert marker["parameters"]["data_root"] == str(run_dir.resolve() / "data")  # what notebook 00 then reads
    manifest = load_manifest(run_dir / "data")  # notebook 00's first step
    assert manifest.scans["scan_id"].tolist() == ["h000_s0", "p000_s0"]
    assert (run_dir / "raw" / "truth" / "stations.csv").is_file() and (run_dir / "config.yaml").is_file()
    assert {p.name for p in (run_dir / "figures").iterdir()} >= {"00a_1_station_factors.json", "00a_2_dwi_shifts.json"}

"""The issue's acceptance numbers on one synthetic raw patient of the demo grid (3 mm, 5 stations,
T1 + DWI b = 50/1000), where the truth is known. (DICOM vs NIfTI agreement and ``sapkit check``:
test_preprocess_cohort.py; the time per subject: benchmarks/bench_preprocess.py.)"""

from __future__ import annotations

import dataclasses

import pytest

from sapkit.config import load_config
from sapkit.data.phantom.raw import generate_raw_cohort
from sapkit.preprocessing.cohort import preprocess
from sapkit.preprocessing.scoring import score_scan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    config = load_config("demo")
    synth = dataclasses.replace(config.synth, n_healthy_subjects=0, n_patients=1)
    root = tmp_path_factory.mktemp("acceptance")
    raw = generate_raw_cohort(root / "raw", synth, config.raw.synth, forms=("nifti",), progress=False)
    result = preprocess(raw / "stations.csv", root / "prep", config.raw, progress=False)
    assert result.scans["status"].tolist() == ["ok"]
    return score_scan(root / "prep", raw, "p000_s0")


def test_stations_agree_after_n4_and_standardisation(scores):
    assert scores["muscle_dev_before"] >= 0.15 and scores["fat_dev_before"] >= 0.15
    assert scores["muscle_dev_after"] <= 0.03 and scores["fat_dev_after"] <= 0.03
    assert scores["t1_correlation"] >= 0.97


def test_geometry_is_kept(scores):
    assert scores["shift_error_mm"] <= 1.0  # every DWI station's known shift recovered
    assert scores["centroid_error_voxels"] <= 0.5  # bone centroids at their true world positions
    assert scores["lesion_volume_change"] <= 0.02

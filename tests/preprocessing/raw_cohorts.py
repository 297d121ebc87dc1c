"""Small synthetic raw cohorts shared by the preprocessing tests (imported by the test modules).

A ``conftest.py`` here would shadow the suite's root ``conftest`` module for the test files that
``from conftest import …`` after this folder is collected, so the fixtures live in this module; each
fixture builds its cohort once per session (module-level cache) whichever test file asks first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sapkit.config import RawSynthConfig, SynthConfig

__all__ = ["SMALL", "SMALL_RAW", "small_raw", "small_prep"]

#: One healthy and one patient scan, 6 mm grid of 38 × 20 × 80 voxels, 5 T1 stations of 20 slices
#: (overlap 4 slices), DWI stations on a 12 × 12 × 9 mm grid: seconds per scan.
SMALL = SynthConfig(n_healthy_subjects=1, scans_per_subject=1, n_patients=1, spacing_mm=6.0, height_mm=480.0, seed=5)
SMALL_RAW = RawSynthConfig(overlap_mm=24.0)
_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def small_raw(tmp_path_factory) -> Path:
    """The SMALL cohort as raw acquisitions, DICOM and per-station NIfTI, with its truth."""
    from sapkit.data.phantom.raw import generate_raw_cohort

    if "raw" not in _BUILT:
        _BUILT["raw"] = generate_raw_cohort(tmp_path_factory.mktemp("raw") / "small", SMALL, SMALL_RAW, progress=False)
    return _BUILT["raw"]


@pytest.fixture(scope="session")
def small_prep(small_raw, tmp_path_factory) -> Path:
    """The SMALL cohort preprocessed from its stations CSV (default settings)."""
    from sapkit.preprocessing.cohort import preprocess

    if "prep" not in _BUILT:
        out = tmp_path_factory.mktemp("prep") / "small"
        preprocess(small_raw / "stations.csv", out, progress=False)
        _BUILT["prep"] = out
    return _BUILT["prep"]

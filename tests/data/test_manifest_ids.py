"""Scan and subject ids become file names: the manifest refuses ids that are not safe file-name stems."""

from __future__ import annotations

import pandas as pd
import pytest

from sapkit.data.manifest import load_manifest
from sapkit.errors import ManifestError

from conftest import write_tiny_cohort


def test_ids_with_path_parts_are_refused_with_the_row_and_the_fix(tmp_path):
    manifest = write_tiny_cohort(tmp_path / "data")
    table = pd.read_csv(tmp_path / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    table.loc[2, "scan_id"] = "../../x"
    table.loc[3, "subject_id"] = "..\\p03"
    table.loc[4, "scan_id"] = ".p04_s0"
    table.loc[5, "scan_id"] = "p05\ts0"
    table.to_csv(tmp_path / "data" / "manifest.csv", index=False)
    with pytest.raises(ManifestError) as info:
        load_manifest(manifest, check_files=False)
    message = str(info.value)
    assert message.startswith(f"manifest {tmp_path / 'data' / 'manifest.csv'} has 4 problem(s):")
    for expected in ("row 4: scan_id '../../x' holds a path part", "row 5: subject_id '..\\\\p03' holds a path part",
                     "row 6: scan_id '.p04_s0' starts with '.'", "row 7: scan_id 'p05\\ts0' holds a control character"):
        assert expected in message, message
    assert "use letters, digits, '_', '-' and '.' (not first)" in message


def test_ordinary_ids_load(tmp_path):
    manifest = load_manifest(write_tiny_cohort(tmp_path / "data"), check_files=False)
    assert manifest.csv_path == tmp_path / "data" / "manifest.csv"
    assert manifest.path in manifest.files() and manifest.csv_path in manifest.files() and len(manifest.files()) == 2 + 18  # 6 scans x 2 channels, 2 skeletons, 4 lesion masks

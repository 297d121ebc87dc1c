"""Notebooks 00 (data) and 01 (skeleton labelling) run headless with the smoke profile (papermill)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "sapkit" if "sapkit" in KernelSpecManager().find_kernel_specs() else "python3"


KERNEL = _kernel_name()


def _execute(name: str, run_dir: Path, out_dir: Path, **extra) -> dict:
    import papermill as pm

    out = out_dir / name
    pm.execute_notebook(str(REPO / "notebooks" / name), str(out), kernel_name=KERNEL, cwd=str(REPO),
                        parameters={"profile": "smoke", "run_dir": str(run_dir), "overrides": {}, **extra},
                        progress_bar=False)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    return nb


@pytest.fixture(scope="module")
def run_00(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("nbdata") / "run"
    _execute("00_data.ipynb", run_dir, run_dir.parent)
    return run_dir


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
    nb = _execute("01_skeleton_labelling.ipynb", run_00, run_00.parent)
    labels = run_00 / "labels"
    dice = pd.read_csv(labels / "propagation_dice.csv", index_col=[0, 1])
    assert set(dice.index.get_level_values("stage")) == {"global", "per-bone"}
    assert len(dice) == 4  # 2 subjects × 1 repeat scan × 2 stages
    qc = pd.read_csv(labels / "skeleton_qc.csv")
    assert qc["scan_id"].nunique() == 4 and len(qc) == 4 * 9
    assert len(list(labels.glob("*_skeleton_propagated.nii.gz"))) == 2
    text = json.dumps(nb)
    assert "mapped fine atlas equals the SAP map on file: True" in text

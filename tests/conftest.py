"""Shared fixtures: tiny NIfTI cohorts written into tmp folders, nibabel's bundled real files."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from nibabel.testing import data_path

from sapkit.data.manifest import write_manifest

NIBABEL_DATA = Path(data_path)


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> str:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path.name


def write_tiny_cohort(root: Path, *, n_healthy: int = 2, n_patients: int = 4, shape=(12, 10, 14),
                      spacing=(2.0, 2.0, 3.0), seed: int = 0) -> Path:
    """Write a minimal valid two-cohort manifest (random images, blob labels) into ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    rows = []
    for i in range(n_healthy + n_patients):
        cohort = "healthy" if i < n_healthy else "patient"
        sid = f"{cohort[0]}{i:02d}"
        t1 = rng.normal(100, 10, shape).astype(np.float32)
        b = rng.normal(50, 5, shape).astype(np.float32)
        row = {"scan_id": f"{sid}_s0", "subject_id": sid, "site": f"site{i % 2}", "cohort": cohort,
               "t1": _save(root / f"{sid}_t1.nii.gz", t1, affine),
               "b1000": _save(root / f"{sid}_b1000.nii.gz", b, affine), "skeleton_label": "", "lesion_label": ""}
        if cohort == "healthy":
            skel = np.zeros(shape, np.int16)
            skel[3:6, 3:6, 2:12] = 2
            skel[7:10, 2:5, 4:8] = 4
            row["skeleton_label"] = _save(root / f"{sid}_skel.nii.gz", skel, affine)
        else:
            lesion = np.zeros(shape, np.uint8)
            for j in range(i - n_healthy + 1):  # patient k has k+1 lesions
                x, y, z = 1 + 3 * (j % 3), 1 + 4 * (j // 3 % 2), 1 + 4 * (j // 6)
                lesion[x:x + 2, y:y + 2, z:z + 2] = 1
            row["lesion_label"] = _save(root / f"{sid}_lesion.nii.gz", lesion, affine)
        rows.append(row)
    return write_manifest(root, pd.DataFrame(rows), name="tiny", description="test cohort")


@pytest.fixture
def tiny_cohort(tmp_path: Path) -> Path:
    """Path of a valid manifest.yaml with 2 healthy and 4 patient scans."""
    return write_tiny_cohort(tmp_path / "data")


@pytest.fixture
def nibabel_data() -> Path:
    """Folder of the real NIfTI files nibabel ships with its tests."""
    return NIBABEL_DATA


@pytest.fixture(scope="module")
def one_math_thread():
    """One torch thread for a module of tiny in-process networks, restored afterwards.

    On a shared 2-core runner oversubscribed OpenMP threads make tiny convolutions ~10x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_series(tmp_path_factory) -> Path:
    """One headless run of the whole notebook series (00 → 05) with the smoke profile.

    Every notebook test reads this run folder (one session-scoped smoke run feeds all notebook
    tests); the executed notebooks are in ``run_dir/notebooks``.
    """
    from sapkit.pipeline.reproduce import reproduce

    run_dir = tmp_path_factory.mktemp("series") / "smoke"
    reproduce("smoke", run_dir, progress=False)
    return run_dir


def executed_text(run_dir: Path, name: str) -> str:
    """All sources and outputs of an executed notebook of the series, as one string."""
    from sapkit.io.run_paths import RunDir

    return RunDir(run_dir).notebook(name).read_text()


# a checkpoint with a pickled callable inside (shared by tests/io and tests/training)
class _Evil:
    """Pickles as a call to os.makedirs(<marker>) — executed only by an unsafe loader."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def write_evil_checkpoint(path: Path, state_dict: dict) -> Path:
    """A checkpoint in sapkit's own layout with a pickled callable inside."""
    marker = str(path.parent / "PWNED")
    torch.save({"format": "sapkit-checkpoint-1", "state_dict": state_dict, "epoch": 1, "optimizer": None,
                "scheduler": None, "scaler": None, "rng": {}, "config": {}, "versions": {},
                "extra": {"task": "skeleton", "hook": _Evil(marker)}}, path)
    return path

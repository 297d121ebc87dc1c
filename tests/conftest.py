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


# ---------------------------------------------------------------- the session's smoke series
# The smoke series (sapkit reproduce --profile smoke, ~2 minutes on 2 cores) is the suite's most
# expensive fixture. When a test that will run needs it, it starts at the end of collection in a
# child process, and the modules that use it run last: the series builds while the rest of the suite
# runs (mostly single-threaded tests on the other core), and the fixture waits for it.
_SERIES: dict = {}
_SERIES_CODE = ("import sys\nfrom sapkit.pipeline.reproduce import reproduce\n"
                "reproduce('smoke', sys.argv[1], progress=False)\n")


def _will_run(item) -> bool:
    """False for a test that a skip or a true skipif mark (decided at collection) will skip."""
    if item.get_closest_marker("skip"):
        return False
    return not any(mark.args and mark.args[0] is True for mark in item.iter_markers("skipif"))


def _start_series(tmp_path_factory) -> None:
    if _SERIES:
        return
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("series")
    log = folder / "reproduce.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", _SERIES_CODE, str(folder / "smoke")], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    _SERIES.update(proc=proc, run_dir=folder / "smoke", log=log)


def _stop_series() -> None:
    proc = _SERIES.get("proc")
    if proc is not None and proc.poll() is None:  # the session ends early (-x, Ctrl-C): no orphan kernels
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - the last resort below
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(session, config, items):
    modules = {item.module for item in items
               if "smoke_series" in getattr(item, "fixturenames", ()) and getattr(item, "module", None)}
    if not modules:
        return
    # whole modules move (their module-scoped fixtures stay shared), in their own order
    items[:] = ([i for i in items if getattr(i, "module", None) not in modules]
                + [i for i in items if getattr(i, "module", None) in modules])
    if config.option.collectonly or not any("smoke_series" in i.fixturenames and _will_run(i) for i in items):
        return
    factory = getattr(config, "_tmp_path_factory", None)  # the session's tmp_path_factory (tmpdir plugin)
    if factory is not None:
        config.add_cleanup(_stop_series)
        _start_series(factory)


@pytest.fixture(scope="session")
def smoke_series(tmp_path_factory) -> Path:
    """One headless run of the whole notebook series (00 → 05) with the smoke profile.

    Every notebook test reads this run folder (one session-scoped smoke run feeds all notebook
    tests); the executed notebooks are in ``run_dir/notebooks``. Started in the background at the
    end of collection (see above); here it is waited for (or started, if collection did not).
    """
    if not _SERIES:
        _start_series(tmp_path_factory)
    code = _SERIES["proc"].wait()
    if code != 0:
        tail = _SERIES["log"].read_text()[-4000:]
        pytest.fail(f"the smoke series failed (exit {code}); its log is {_SERIES['log']}:\n{tail}", pytrace=False)
    return _SERIES["run_dir"]


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

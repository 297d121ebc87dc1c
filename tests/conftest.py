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


# ---------------------------------------------------------------- the smoke runs, in the background
# The smoke series (sapkit reproduce --profile smoke) and the sweep over it are the suite's most
# expensive fixtures (about 2 and 1 minutes on 2 cores). When a test that will run needs one of them,
# tests/smoke_runs.py starts at the end of collection in a child process with the stages needed, and
# the modules that use them run last: the runs are built while the rest of the suite runs (mostly
# single-threaded tests on the other core); the fixtures wait for their stage.
_RUNS: dict = {}
_STAGE_OF = {"smoke_series": "series", "smoke_sweep": "sweep"}


def _will_run(item) -> bool:
    """False for a test that a skip or a true skipif mark (decided at collection) will skip."""
    if item.get_closest_marker("skip"):
        return False
    return not any(mark.args and mark.args[0] is True for mark in item.iter_markers("skipif"))


def _start_runs(folder: Path, stages: list[str]) -> None:
    import subprocess
    import sys

    log = folder / "smoke_runs.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("smoke_runs.py")), str(folder), *stages],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _RUNS.update(proc=proc, folder=folder, log=log, stages=stages)


def _stop_runs() -> None:
    proc = _RUNS.get("proc")
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
    def needs(item) -> set[str]:
        return {stage for name, stage in _STAGE_OF.items() if name in getattr(item, "fixturenames", ())}

    modules = {item.module for item in items if needs(item) and getattr(item, "module", None)}
    if not modules:
        return
    # whole modules move (their module-scoped fixtures stay shared), in their own order
    items[:] = ([i for i in items if getattr(i, "module", None) not in modules]
                + [i for i in items if getattr(i, "module", None) in modules])
    wanted = set().union(*(needs(i) for i in items if _will_run(i)))
    factory = getattr(config, "_tmp_path_factory", None)  # the session's tmp_path_factory (tmpdir plugin)
    if wanted and not config.option.collectonly and factory is not None:
        config.add_cleanup(_stop_runs)
        _start_runs(factory.mktemp("smoke_runs"), [s for s in _STAGE_OF.values() if s in wanted | {"series"}])


def _wait_for(stage: str, request) -> Path:
    """The runs' folder once ``stage`` is done."""
    import time

    if not _RUNS:  # collection did not start the runs (another plugin reordered or deselected late)
        request.config.add_cleanup(_stop_runs)
        _start_runs(request.getfixturevalue("tmp_path_factory").mktemp("smoke_runs"),
                    [s for s in _STAGE_OF.values() if s in {"series", stage}])
    folder, proc = _RUNS["folder"], _RUNS["proc"]
    if stage not in _RUNS["stages"]:  # not foreseen at collection: after the others, in the foreground
        import smoke_runs

        proc.wait()
        smoke_runs.main(folder, [stage])
    while not (folder / f"{stage}.done").exists():
        code = proc.poll()
        if code is not None and not (folder / f"{stage}.done").exists():
            tail = _RUNS["log"].read_text()[-4000:]
            pytest.fail(f"the smoke runs failed before stage {stage!r} finished (exit {code}); "
                        f"log {_RUNS['log']}:\n{tail}", pytrace=False)
        time.sleep(0.5)
    return folder


@pytest.fixture(scope="session")
def smoke_series(request) -> Path:
    """One headless run of the whole notebook series (00 → 05) with the smoke profile.

    Every notebook test reads this run folder (one session-scoped smoke run feeds all notebook
    tests); the executed notebooks are in ``run_dir/notebooks``. Built in the background (above).
    """
    import smoke_runs

    return smoke_runs.series_dir(_wait_for("series", request))


@pytest.fixture(scope="session")
def smoke_sweep(request):
    """The sweep over the smoke series (tests/smoke_runs.py, built in the background): ``array`` and
    ``serial`` (the summaries of the local job array and of ``--jobs 1``) and their grid files."""
    from types import SimpleNamespace

    folder = _wait_for("sweep", request) / "sweep"
    return SimpleNamespace(array=pd.read_pickle(folder / "array.pkl"), serial=pd.read_pickle(folder / "serial.pkl"),
                           array_grid=folder / "array.yaml", serial_grid=folder / "serial.yaml")


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

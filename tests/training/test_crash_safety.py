"""Crash safety: a training run killed with SIGKILL mid-epoch leaves only whole artefacts, and
``sapkit train ... --resume`` completes it to the same weights as an uninterrupted run.

Three processes start together so their imports overlap (``import monai`` takes seconds):

* *reference* — ``sapkit train lesion`` for ``EPOCHS`` epochs, never interrupted;
* *victim* — the same command in another run folder, killed with SIGKILL once ``log.csv`` shows a
  finished epoch, during a later epoch;
* *resumer* — a Python process that imports the same modules, waits, then runs the same
  ``sapkit train ... --resume`` entry point (:func:`sapkit.cli.main`) on the victim's folder.

All three run with one OpenMP thread (same arithmetic order, and polite on a shared machine).
The data are the smoke phantom cohort, shrunk (3 patients, 8 mm voxels) so that one epoch of
16³ patches takes well under a second.

Temporary files: :func:`sapkit.io.atomic.atomic_path` writes ``.<stem>.<random><suffix>`` next to the
target and renames it; a SIGKILL between the two leaves that hidden file behind (nothing runs
to delete it). The test records such leftovers, checks that no *named* artefact is partial and
that the resumed run ignores them; it does not require their absence.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from sapkit.io.checkpoints import load_checkpoint
from sapkit.io.run_paths import RunDir
from sapkit.config import load_config
from sapkit.data.manifest import load_manifest
from sapkit.data.splits import save_splits, splits_from_manifest

EPOCHS = 8
KILL_AFTER_EPOCH = 1  # wait until log.csv has this epoch, then kill during a later one
TIMEOUT_S = 240
TRAIN = ["train", "lesion", "--profile", "smoke", "--init", "scratch", "--fold", "0",
         "-p", f"lesion.epochs={EPOCHS}", "-p", "lesion.warmup_epochs=1", "-p", "lesion.roi=[16,16,16]",
         "-p", "lesion.val_every=3"]
RESUMER = ("import sys\nimport sapkit.training.lesion_task, sapkit.training.lesion_sampler, sapkit.data.cases\nfrom sapkit.cli import main\n"
           "sys.stdin.readline()\nsys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A smoke phantom cohort (shrunk) with splits.json beside it: ``<tmp>/template/{data,splits.json}``."""
    from sapkit.data.phantom import generate_cohorts

    root = tmp_path_factory.mktemp("crash") / "template"
    config = load_config("smoke")
    synth = dataclasses.replace(config.synth, n_patients=3, scans_per_subject=1, spacing_mm=8.0, height_mm=480.0)
    manifest = generate_cohorts(RunDir(root).data, synth, progress=False)
    s = config.splits
    save_splits(splits_from_manifest(load_manifest(manifest), k=s.k, tuning_fold=s.tuning_fold, seed=s.seed,
                                     healthy_val_fraction=s.healthy_val_fraction), root)
    return root


def _run_folder(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    return env


def _sapkit(args: list[str], **kw) -> subprocess.Popen:
    script = Path(sys.executable).with_name("sapkit")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-c", "import sys\nfrom sapkit.cli import main\nsys.exit(main())"]
    return subprocess.Popen(cmd + args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _log_epochs(path: Path) -> list[int]:
    if not path.is_file():
        return []
    return pd.read_csv(path)["epoch"].astype(int).tolist()


def _hidden(p: Path, folder: Path) -> bool:
    """A hidden file, or a file in a hidden folder (atomic writes stage in ``.sapkit-tmp/``)."""
    return any(part.startswith(".") for part in p.relative_to(folder).parts)


def _named(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder))


def _leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and _hidden(p, folder))


def _assert_whole(folder: Path) -> None:
    """Every named artefact under ``folder`` parses completely."""
    for p in _named(folder):
        if p.suffix == ".pt":
            ck = load_checkpoint(p)  # weights_only=True; raises CheckpointError on a partial file
            assert ck["format"] == "sapkit-checkpoint-1" and ck["state_dict"], p
        elif p.name.endswith(".nii.gz") or p.suffix == ".nii":
            np.asarray(nib.load(str(p)).dataobj)  # decompresses the whole file
        elif p.suffix == ".csv":
            assert len(pd.read_csv(p)) >= 1, p
        elif p.suffix in (".md", ".json", ".yaml"):
            p.read_text()


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(data_dir, tmp_path):
    ref_dir = _run_folder(data_dir, tmp_path / "reference")
    run_dir = _run_folder(data_dir, tmp_path / "victim")
    md, ref_md = RunDir(run_dir).lesion("scratch", 0), RunDir(ref_dir).lesion("scratch", 0)
    out = md.path
    procs: list[subprocess.Popen] = []
    try:
        reference = _sapkit(TRAIN + ["--run-dir", str(ref_dir)])
        victim = _sapkit(TRAIN + ["--run-dir", str(run_dir)])
        resumer = subprocess.Popen([sys.executable, "-c", RESUMER, *TRAIN, "--run-dir", str(run_dir), "--resume"],
                                   env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs = [reference, victim, resumer]

        # --- kill the victim during the epoch after KILL_AFTER_EPOCH
        deadline = time.monotonic() + TIMEOUT_S
        while max(_log_epochs(md.log_csv), default=-1) < KILL_AFTER_EPOCH:
            assert victim.poll() is None, victim.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "the victim run never finished an epoch"
            time.sleep(0.01)
        seconds = float(pd.read_csv(md.log_csv)["seconds"].iloc[-1])
        time.sleep(min(0.5 * seconds, 0.3))  # into the next epoch, well before the run ends
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL

        # --- the run folder after the crash: unfinished, and every named artefact whole
        assert not md.model().exists(), "the victim finished before the kill; the test proves nothing"
        _assert_whole(run_dir)
        logged = _log_epochs(md.log_csv)
        assert logged == list(range(len(logged))) and KILL_AFTER_EPOCH <= logged[-1] < EPOCHS, logged
        last = load_checkpoint(md.checkpoint_last)["epoch"] if md.checkpoint_last.exists() else 0
        # log.csv is rewritten before checkpoint_last.pt, so the log is at most one epoch ahead
        assert last <= logged[-1] <= last + 1, (last, logged)
        crash_leftovers = _leftovers(run_dir)

        # --- resume to the requested epochs
        resumed_out, _ = resumer.communicate(b"go\n", timeout=TIMEOUT_S)
        assert resumer.returncode == 0, resumed_out.decode()[-3000:]
        ref_out, _ = reference.communicate(timeout=TIMEOUT_S)
        assert reference.returncode == 0, ref_out.decode()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    assert f"lesion: {EPOCHS} epochs done" in resumed_out.decode()
    _assert_whole(run_dir)
    assert {"model_final.pt", "model_best.pt", "log.csv", "MODEL_CARD.md"} <= {p.name for p in out.iterdir()}
    assert not md.checkpoint_last.exists()
    # the crash may leave half-written files, but only in hidden staging folders; resuming removes
    # those of the task folder, and the resumed run leaves none of its own
    assert all(_hidden(p, run_dir) for p in crash_leftovers)
    assert _leftovers(out) == []

    # the resumed log continues the numbering and equals the uninterrupted run's, timings aside
    log = pd.read_csv(md.log_csv)
    ref_log = pd.read_csv(ref_md.log_csv)
    assert log["epoch"].tolist() == list(range(EPOCHS + 1))
    pd.testing.assert_frame_equal(log.drop(columns="seconds"), ref_log.drop(columns="seconds"))

    # exact resume: the same weights, bit for bit, as the run that was never interrupted
    for which in ("final", "best"):
        name = md.model(which).name
        a, b = _state(md.model(which)), _state(ref_md.model(which))
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{name}: {len(different)} tensors differ after resume, e.g. {different[:3]}"
    assert load_checkpoint(md.model())["epoch"] == EPOCHS

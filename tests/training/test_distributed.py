"""DDP: the same `sapkit train` command under torchrun (2 CPU processes, gloo); only rank 0 writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sapkit.io.run_paths import RunDir
from test_tasks import write_train_cohort

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (BIN / "torchrun").exists() or not (BIN / "sapkit").exists(),
                                reason="torchrun or the sapkit console script is not installed")


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(BIN / "torchrun"), "--standalone", "--nnodes=1", "--nproc_per_node=2", "--no-python",
           str(BIN / "sapkit"), "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_torchrun_two_ranks_skeleton_then_lesion(tmp_path):
    run_dir = write_train_cohort(tmp_path / "run")
    common = ["--profile", "smoke", "--run-dir", str(run_dir), "-p", "skeleton.epochs=2", "-p", "lesion.epochs=2"]
    skel = _torchrun("skeleton", *common)
    assert skel.returncode == 0, skel.stderr[-3000:]
    les = _torchrun("lesion", "--init", "sap", "--fold", "0", *common)
    assert les.returncode == 0, les.stderr[-3000:]
    assert les.stdout.count("transfer (sap)") == 1  # printed by rank 0 only
    rd = RunDir(run_dir)
    for folder, n_rows in ((rd.skeleton, 3), (rd.lesion("sap", 0), 3)):
        names = sorted(p.name for p in folder.path.iterdir())
        expected = ["MODEL_CARD.md", "log.csv", "model_best.pt", "model_final.pt"]
        if folder != rd.skeleton:
            expected = sorted(expected + ["transfer.csv"])
        assert names == expected  # no per-rank duplicates, no leftover temp files
        log = pd.read_csv(folder.log_csv)
        assert log["epoch"].tolist() == list(range(n_rows))  # each epoch logged once
    transfer = pd.read_csv(rd.lesion("sap", 0).transfer_csv)
    assert set(transfer.loc[transfer["part"] == "head", "status"]) == {"skipped-by-rule"}
    assert set(transfer.loc[transfer["part"].isin(["encoder", "decoder"]), "status"]) == {"loaded"}


def test_torchrun_two_ranks_ssl_takes_several_steps(tmp_path):
    """SSL pretraining uses only the backbone's encoder: DDP must accept the unused decoder/head
    (it failed at the second optimiser step with 'parameters that were not used in producing loss')."""
    run_dir = write_train_cohort(tmp_path / "run")
    # 2 training scans x 4 patches = 8 patches, 4 per rank, batch 2: 2 optimiser steps per rank and epoch
    ssl = _torchrun("ssl", "--profile", "smoke", "--run-dir", str(run_dir), "-p", "ssl.epochs=2",
                    "-p", "ssl.samples_per_volume=4", "-p", "ssl.batch_size=2")
    assert ssl.returncode == 0, ssl.stderr[-3000:]
    assert "Traceback" not in ssl.stderr
    md = RunDir(run_dir).ssl
    assert sorted(p.name for p in md.path.iterdir()) == ["MODEL_CARD.md", "log.csv", "model_best.pt", "model_final.pt"]
    log = pd.read_csv(md.log_csv)
    assert log["epoch"].tolist() == [0, 1, 2]
    assert log["loss"].iloc[1:].notna().all() and (log["loss"].iloc[1:] > 0).all()

"""DDP: the same `sapkit train` command under torchrun (2 CPU processes, gloo); only rank 0 writes.

The skeleton model is trained by torchrun directly; the SAP lesion model on top of it by the SLURM
script that ``sapkit train lesion --print-slurm`` prints, run with two local ranks (a fake ``srun``
that runs the command here, a fake ``scontrol`` that names this host). Each torchrun start costs
three interpreters importing torch and MONAI, so the two tests share these two runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from sapkit.cli import main
from sapkit.config import load_config
from sapkit.io.run_paths import RunDir
from sapkit.training.launch import training_plan
from test_tasks import write_train_cohort

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (BIN / "torchrun").exists() or not (BIN / "sapkit").exists(),
                                reason="torchrun or the sapkit console script is not installed")
EPOCHS = 2


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(BIN / "torchrun"), "--standalone", "--nnodes=1", "--nproc_per_node=2", "--no-python",
           str(BIN / "sapkit"), "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fake_slurm(folder: Path) -> Path:
    """``srun`` that drops its options and runs the command; ``scontrol`` that names this host."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "srun").write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    (folder / "scontrol").write_text("#!/bin/bash\necho 127.0.0.1\n")
    for name in ("srun", "scontrol"):
        (folder / name).chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Skeleton by torchrun, then SAP lesion fold 0 by the printed SLURM script, 2 epochs each."""
    root = tmp_path_factory.mktemp("ddp")
    run_dir = write_train_cohort(root / "run")
    common = ["--profile", "smoke", "--run-dir", str(run_dir), "-p", f"skeleton.epochs={EPOCHS}",
              "-p", f"lesion.epochs={EPOCHS}", "-p", "lesion.val_every=2"]
    skeleton = _torchrun("skeleton", *common)
    assert skeleton.returncode == 0, skeleton.stderr[-3000:]
    lesion_args = ["lesion", "--init", "sap", "--fold", "0", *common]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", *lesion_args, "--print-slurm", "--nodes", "1", "--gpus-per-node", "0",
                     "--procs-per-node", "2", "--cpus-per-node", "2", "--rdzv-port", str(_free_port())])
    assert code == 0, printed.getvalue()
    script = root / "train.sbatch"
    script.write_text(printed.getvalue())
    env = {**os.environ, "PATH": f"{_fake_slurm(root / 'bin')}:{os.environ['PATH']}", "SLURM_NNODES": "1",
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost"}
    lesion = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert lesion.returncode == 0, lesion.stderr[-3000:]
    return SimpleNamespace(run_dir=run_dir, script=printed.getvalue(), lesion=lesion)


def test_torchrun_two_ranks_skeleton_then_lesion(ddp_run):
    assert ddp_run.lesion.stdout.count("transfer (sap)") == 1  # printed by rank 0 only
    rd = RunDir(ddp_run.run_dir)
    for folder in (rd.skeleton, rd.lesion("sap", 0)):
        names = sorted(p.name for p in folder.path.iterdir())
        expected = ["MODEL_CARD.md", "log.csv", "model_best.pt", "model_final.pt"]
        if folder != rd.skeleton:
            expected = sorted(expected + ["transfer.csv"])
        assert names == expected  # no per-rank duplicates, no leftover temp files
        log = pd.read_csv(folder.log_csv)
        assert log["epoch"].tolist() == list(range(EPOCHS + 1))  # each epoch logged once
    transfer = pd.read_csv(rd.lesion("sap", 0).transfer_csv)
    assert set(transfer.loc[transfer["part"] == "head", "status"]) == {"skipped-by-rule"}
    assert set(transfer.loc[transfer["part"].isin(["encoder", "decoder"]), "status"]) == {"loaded"}


def test_printed_script_trains_with_two_local_ranks_the_documented_steps(ddp_run):
    script = ddp_run.script
    stated = re.search(r"per process and epoch (\d+) patches = (\d+) optimiser steps; 2 epochs = (\d+) steps", script)
    assert stated, script
    patches, per_epoch, total = map(int, stated.groups())
    plan = training_plan(ddp_run.run_dir, load_config("smoke", {"lesion.epochs": EPOCHS}), "lesion", world_size=2,
                         init="sap")
    assert (plan.samples_per_epoch, plan.steps_per_epoch, plan.total_steps) == (patches, per_epoch, total)
    assert "2 processes; per process batch 2 (global batch 4)" in script
    assert ddp_run.lesion.stdout.count(f"lesion: {EPOCHS} epochs done") == 1  # rank 0 reports
    md = RunDir(ddp_run.run_dir).lesion("sap", 0)
    assert pd.read_csv(md.log_csv)["epoch"].tolist() == [0, 1, 2]
    ck = torch.load(md.model("final"), map_location="cpu", weights_only=True)
    assert ck["extra"]["world_size"] == 2
    steps = {int(s["step"]) for s in ck["optimizer"]["state"].values()}
    assert steps == {total}  # every parameter stepped exactly as often as the script states
    assert RunDir(ddp_run.run_dir).jobs("train").is_dir()  # SLURM's log folder exists before sbatch


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

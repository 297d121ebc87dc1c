"""Multi-node launch: the printed SLURM script runs with 2 local CPU ranks and trains the steps it states."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from sapkit.cli import main
from sapkit.config import load_config
from sapkit.errors import ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.training.launch import learning_rates, slurm_script, steps_per_epoch, torchrun_command, training_plan

from test_tasks import write_train_cohort

BIN = Path(sys.executable).parent


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


def test_steps_and_learning_rates_per_process():
    assert steps_per_epoch(12, 1, 2) == (12, 6)
    assert steps_per_epoch(12, 2, 2) == (6, 3)
    assert steps_per_epoch(13, 4, 2) == (4, 2)  # ranks padded to the same count: no rank waits at a barrier
    cfg = load_config("smoke")
    assert learning_rates(cfg, "lesion", "scratch") == {"encoder": 1e-3, "decoder": 1e-3}
    assert learning_rates(cfg, "ssl") == {"all": 1e-3}
    with pytest.raises(ConfigError, match="init must be"):
        learning_rates(cfg, "lesion", "imagenet")
    with pytest.raises(ConfigError):
        steps_per_epoch(0, 1, 1)


def test_script_asks_slurm_for_the_nodes_and_states_the_plan(tmp_path):
    plan = training_plan(tmp_path / "missing", load_config("smoke"), "lesion", world_size=8, init="sap",
                         count_samples=False)
    assert plan.samples_per_epoch is None and plan.global_batch == 16  # no data: the formula only
    text = slurm_script(["lesion", "--fold", "0"], plan=plan, nodes=2, procs_per_node=4, gpus_per_node=4,
                        cpus_per_node=32, mem_gb=100, time_min=90, log_dir=tmp_path, partition="gpu", account="lab",
                        setup=["module load cuda"])
    for flag in ("--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=4", "--cpus-per-task=32", "--mem=100G",
                 "--time=90", "--partition=gpu", "--account=lab"):
        assert f"#SBATCH {flag}\n" in text
    assert "per process batch 2 (global batch 16)" in text and "encoder 0.0002, decoder 0.001" in text
    assert "module load cuda\nexport OMP_NUM_THREADS=8\n" in text
    srun = text.strip().splitlines()[-1]
    assert srun.startswith("srun --ntasks-per-node=1 ") and srun.endswith("train lesion --fold 0 --resume")
    assert "--nnodes=$SLURM_NNODES --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=${head_node}:29500" in srun
    assert torchrun_command(["ssl"], nnodes=1, nproc_per_node=2, rdzv_endpoint="h:1", rdzv_id="x")[-2:] == ["train", "ssl"]
    with pytest.raises(ConfigError, match="--nodes"):
        slurm_script(["ssl"], plan=plan, nodes=0, procs_per_node=1, gpus_per_node=0, cpus_per_node=1, mem_gb=1,
                     time_min=1, log_dir=tmp_path)


def test_skeleton_and_ssl_counts_from_the_manifest_match_the_sampler(tmp_path):
    from sapkit.data.cases import load_cases
    from sapkit.data.manifest import load_manifest
    from sapkit.data.splits import load_splits
    from sapkit.training.skeleton_sampler import PatchSampler

    run_dir = write_train_cohort(tmp_path / "run", n_healthy=3, n_patients=3)
    config = load_config("smoke", {"skeleton.samples_per_volume": 3})
    cases = load_cases(load_manifest(RunDir(run_dir).data), cohort="healthy",
                       subjects=load_splits(run_dir)["healthy"]["train"])
    for world in (1, 2, 4):
        sampler = PatchSampler(cases, roi=(32, 32, 32), samples_per_volume=3, label="skeleton", seed=1, rank=0,
                               world_size=world)
        plan = training_plan(run_dir, config, "skeleton", world_size=world)
        assert plan.samples_per_epoch == len(sampler) and plan.steps_per_epoch == -(-len(sampler) // 2)


@pytest.mark.skipif(not (BIN / "torchrun").exists() or not (BIN / "sapkit").exists(),
                    reason="torchrun or the sapkit console script is not installed")
def test_printed_script_trains_with_two_local_ranks_the_documented_steps(tmp_path, capsys):
    run_dir = write_train_cohort(tmp_path / "run")
    args = ["lesion", "--init", "scratch", "--fold", "0", "--profile", "smoke", "--run-dir", str(run_dir),
            "-p", "lesion.epochs=2", "-p", "lesion.val_every=2"]
    port = _free_port()
    assert main(["train", *args, "--print-slurm", "--nodes", "1", "--gpus-per-node", "0", "--procs-per-node", "2",
                 "--cpus-per-node", "2", "--rdzv-port", str(port)]) == 0
    script = capsys.readouterr().out
    stated = re.search(r"per process and epoch (\d+) patches = (\d+) optimiser steps; 2 epochs = (\d+) steps", script)
    assert stated, script
    patches, per_epoch, total = map(int, stated.groups())
    plan = training_plan(run_dir, load_config("smoke", {"lesion.epochs": 2}), "lesion", world_size=2, init="scratch")
    assert (plan.samples_per_epoch, plan.steps_per_epoch, plan.total_steps) == (patches, per_epoch, total)
    assert "2 processes; per process batch 2 (global batch 4)" in script
    path = tmp_path / "train.sbatch"
    path.write_text(script)
    env = {**os.environ, "PATH": f"{_fake_slurm(tmp_path / 'bin')}:{os.environ['PATH']}", "SLURM_NNODES": "1",
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost"}
    done = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("lesion: 2 epochs done") == 1  # rank 0 reports
    md = RunDir(run_dir).lesion("scratch", 0)
    assert pd.read_csv(md.log_csv)["epoch"].tolist() == [0, 1, 2]
    ck = torch.load(md.model("final"), map_location="cpu", weights_only=True)
    assert ck["extra"]["world_size"] == 2
    steps = {int(s["step"]) for s in ck["optimizer"]["state"].values()}
    assert steps == {total}  # every parameter stepped exactly as often as the script states
    assert RunDir(run_dir).jobs("train").is_dir()  # SLURM's log folder exists before sbatch

"""Multi-node launch: per-process steps and learning rates, the SLURM script's requests and stated plan,
and the plan's patch counts against the samplers. The printed script run with 2 local CPU ranks is in
test_distributed.py (it trains the SAP model on top of that file's torchrun skeleton)."""

from __future__ import annotations

import pytest

from sapkit.config import load_config
from sapkit.errors import ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.training.launch import learning_rates, slurm_script, steps_per_epoch, torchrun_command, training_plan

from test_tasks import write_train_cohort


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

"""Multi-node training: the ``torchrun`` command and SLURM batch script for ``sapkit train``.

``sapkit train TASK … --print-slurm --nodes N --gpus-per-node G`` prints a batch script that
starts one ``torchrun`` per node (``srun --ntasks-per-node=1``); the ``torchrun`` agents meet
through the c10d rendezvous on the job's first node and start ``G`` ranks each (``N × G`` ranks
in all), every rank running the same ``sapkit train`` command (see
:mod:`sapkit.training.distributed`: gloo on CPU, nccl on CUDA, rank 0 writes). The command
always carries ``--resume``, so a requeued or restarted job continues from ``checkpoint_last.pt``
(a fresh run folder starts from scratch).

What one process does (:class:`TrainPlan`): ``<task>.batch_size`` is **per process** — the
global batch is ``batch_size × world_size``; the learning rates are **not** scaled with the
number of processes; each epoch the sampler deals its ``n`` patches round-robin to the ranks,
so one rank draws ``ceil(n / world_size)`` of them and takes ``ceil(ceil(n / world_size) /
batch_size)`` optimiser steps per epoch — every rank the same number.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sapkit.config import Config
from sapkit.errors import ConfigError

__all__ = ["TrainPlan", "learning_rates", "steps_per_epoch", "training_plan", "torchrun_command", "slurm_script",
           "script_from_args"]


@dataclass(frozen=True)
class TrainPlan:
    """Per-process batch, learning rates and optimiser steps of one distributed training run.

    Attributes
    ----------
    task : {"skeleton", "ssl", "lesion"}
    world_size : int
        Processes (ranks) in all: nodes × processes per node.
    batch_per_process, global_batch : int
        Patches per optimiser step on one rank, and over all ranks.
    learning_rates : dict of str to float
        Peak learning rate per parameter group — the same on every rank, not scaled.
    epochs : int
    samples_per_epoch : int or None
        Patches one rank draws per epoch (None when the data could not be read).
    steps_per_epoch, total_steps : int or None
        Optimiser steps of one rank per epoch and over the whole run.
    """

    task: str
    world_size: int
    batch_per_process: int
    global_batch: int
    learning_rates: dict[str, float]
    epochs: int
    samples_per_epoch: int | None = None
    steps_per_epoch: int | None = None
    total_steps: int | None = None

    def describe(self) -> list[str]:
        """The plan as short sentences (the header of the batch script)."""
        lrs = ", ".join(f"{k} {v:g}" for k, v in self.learning_rates.items())
        lines = [f"{self.task}: {self.world_size} processes; per process batch {self.batch_per_process} "
                 f"(global batch {self.global_batch}); learning rate per group {lrs} on every process "
                 "(not scaled with the number of processes)"]
        if self.samples_per_epoch is not None:
            lines.append(f"per process and epoch {self.samples_per_epoch} patches = {self.steps_per_epoch} optimiser "
                         f"steps; {self.epochs} epochs = {self.total_steps} steps per process")
        else:
            lines.append(f"per process and epoch ceil(ceil(n / {self.world_size}) / {self.batch_per_process}) steps for "
                         f"n patches per epoch; {self.epochs} epochs")
        return lines


def learning_rates(config: Config, task: str, init: str = "sap") -> dict[str, float]:
    """Peak learning rate per optimiser parameter group of ``task`` (``init`` for the lesion task).

    Examples
    --------
    >>> from sapkit.config import load_config
    >>> learning_rates(load_config("smoke"), "lesion", "sap")
    {'encoder': 0.0002, 'decoder': 0.001}
    """
    if task == "skeleton":
        return {"encoder": float(config.skeleton.lr), "decoder": float(config.skeleton.lr)}
    if task == "ssl":
        return {"all": float(config.ssl.lr)}
    if task != "lesion":
        raise ConfigError(f"task must be skeleton, ssl or lesion, got {task!r}")
    lc = config.lesion
    if init == "scratch":
        return {"encoder": float(lc.lr_scratch), "decoder": float(lc.lr_scratch)}
    if init not in ("sap", "ssl"):
        raise ConfigError(f"init must be scratch, ssl or sap, got {init!r}")
    return {"encoder": float(getattr(lc, f"lr_encoder_{init}")), "decoder": float(getattr(lc, f"lr_decoder_{init}"))}


def steps_per_epoch(n_samples: int, world_size: int, batch_size: int) -> tuple[int, int]:
    """(patches, optimiser steps) of one rank per epoch when ``n_samples`` are dealt to ``world_size`` ranks.

    Examples
    --------
    >>> steps_per_epoch(13, 2, 2)   # 7 patches per rank: batches of 2, 2, 2, 1
    (7, 4)
    """
    if n_samples < 1 or world_size < 1 or batch_size < 1:
        raise ConfigError(f"need n_samples, world_size and batch_size >= 1, got {n_samples}, {world_size}, {batch_size}")
    per_rank = -(-n_samples // world_size)
    return per_rank, math.ceil(per_rank / batch_size)


def training_plan(run_dir: str | Path, config: Config, task: str, *, world_size: int, init: str = "sap",
                  fold: str | int = "0", data: str | Path | None = None, count_samples: bool = True) -> TrainPlan:
    """What each of ``world_size`` processes will do in ``sapkit train task``.

    With ``count_samples`` the patch and step counts are exact: skeleton/SSL patches are counted
    from the manifest, the lesion sampler is built for rank 0 (the fold's patient scans are
    read). What stops the counting (no manifest, no ``splits.json``, an unknown fold, a fold
    without lesions) would stop the job when it starts, so it is raised here; without
    ``count_samples`` the counts are None.

    Parameters
    ----------
    run_dir : str or Path
        Run folder (``splits.json``; ``data/`` unless ``data``).
    config : sapkit.config.Config
    task : {"skeleton", "ssl", "lesion"}
    world_size : int
        Nodes × processes per node.
    init, fold : str
        Lesion initialisation and fold.
    """
    from sapkit.errors import SapkitError

    if world_size < 1:
        raise ConfigError(f"world_size must be >= 1, got {world_size}")
    lrs = learning_rates(config, task, init)  # also checks task and init
    tc = getattr(config, task)
    n = None
    if count_samples:
        try:
            n = _samples_per_rank(Path(run_dir), config, task, world_size=world_size, fold=str(fold), data=data)
        except SapkitError as exc:
            exc.args = (f"the job would fail when it starts: {exc}",)
            raise
        except FileNotFoundError as exc:
            raise ConfigError(f"the job would fail when it starts: {exc.filename or exc} does not exist; check "
                              "--run-dir and --data") from None
    steps = None if n is None else math.ceil(n / tc.batch_size)
    return TrainPlan(task=task, world_size=world_size, batch_per_process=int(tc.batch_size),
                     global_batch=int(tc.batch_size) * world_size, learning_rates=lrs, epochs=int(tc.epochs),
                     samples_per_epoch=n, steps_per_epoch=steps, total_steps=None if steps is None else steps * tc.epochs)


def _samples_per_rank(run_dir: Path, config: Config, task: str, *, world_size: int, fold: str, data: Any) -> int:
    """Patches rank 0 draws per epoch in ``sapkit train`` (same scans, seed and sharding).

    Skeleton and SSL patches are ``samples_per_volume`` per healthy training scan, counted from
    the manifest without reading images; the lesion count needs the lesion sampler itself (its
    positives are the lesions of the training scans), so the fold's patient scans are read.
    """
    from sapkit.data.manifest import load_manifest
    from sapkit.data.splits import load_splits
    from sapkit.io.run_paths import RunDir

    manifest = load_manifest(RunDir.data_dir(run_dir, data))
    splits = load_splits(run_dir)
    if task in ("skeleton", "ssl"):
        scans = manifest.scans
        train = set(map(str, splits["healthy"]["train"]))
        n_scans = int(((scans["cohort"] == "healthy") & scans["subject_id"].astype(str).isin(train)).sum())
        return steps_per_epoch(n_scans * int(getattr(config, task).samples_per_volume), world_size, 1)[0]
    from sapkit.data.cases import load_cases
    from sapkit.training.cross_validation import fold_patients
    from sapkit.training.lesion_sampler import build_sampler

    subjects, _ = fold_patients(splits, fold, config)  # the same patients finetune() trains on
    cases = load_cases(manifest, cohort="patient", subjects=subjects, percentiles=tuple(config.preprocess.clip_percentiles))
    return len(build_sampler(cases, config.lesion, seed=config.seed, rank=0, world_size=world_size))


def _executable(name: str) -> str:
    """``name`` next to this Python (the kit's environment) when it is there, else ``name`` on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def torchrun_command(train_args: Sequence[str], *, nnodes: int | str, nproc_per_node: int, rdzv_endpoint: str,
                     rdzv_id: str, torchrun: str | None = None, sapkit: str | None = None) -> list[str]:
    """``torchrun`` with a c10d rendezvous running ``sapkit train <train_args>`` in every rank.

    Parameters
    ----------
    train_args : sequence of str
        Arguments after ``sapkit train`` (task first).
    nnodes : int or str
        Nodes (a shell variable such as ``$SLURM_NNODES`` in a batch script).
    nproc_per_node : int
        Ranks per node (GPUs per node, or CPU processes).
    rdzv_endpoint, rdzv_id : str
        ``host:port`` of the rendezvous (the first node) and a job-unique id.

    Examples
    --------
    >>> torchrun_command(["lesion", "--fold", "0"], nnodes=2, nproc_per_node=4, rdzv_endpoint="n1:29500",
    ...                  rdzv_id="77", torchrun="torchrun", sapkit="sapkit")[1:6]
    ['--nnodes=2', '--nproc_per_node=4', '--rdzv_backend=c10d', '--rdzv_endpoint=n1:29500', '--rdzv_id=77']
    """
    if int(nproc_per_node) < 1:
        raise ConfigError(f"processes per node must be >= 1, got {nproc_per_node}")
    return [torchrun or _executable("torchrun"), f"--nnodes={nnodes}", f"--nproc_per_node={int(nproc_per_node)}",
            "--rdzv_backend=c10d", f"--rdzv_endpoint={rdzv_endpoint}", f"--rdzv_id={rdzv_id}", "--no-python",
            sapkit or _executable("sapkit"), "train", *map(str, train_args)]


def slurm_script(train_args: Sequence[str], *, plan: TrainPlan, nodes: int, procs_per_node: int, gpus_per_node: int,
                 cpus_per_node: int, mem_gb: float, time_min: int, log_dir: str | Path, partition: str | None = None,
                 account: str | None = None, qos: str | None = None, setup: Sequence[str] = (), rdzv_port: int = 29500,
                 job_name: str = "sapkit-train") -> str:
    """A ``sbatch`` script running ``sapkit train <train_args>`` on ``nodes`` nodes.

    Parameters
    ----------
    train_args : sequence of str
        Arguments after ``sapkit train``; ``--resume`` is appended when missing.
    plan : TrainPlan
        Written into the header (per-process batch, learning rates, steps).
    nodes, procs_per_node : int
        Nodes and ranks per node (``world_size = nodes × procs_per_node``).
    gpus_per_node, cpus_per_node : int
        GPUs and CPU cores per node (0 GPUs: CPU ranks, gloo).
    mem_gb : float
        Memory per node, GB.
    time_min : int
        Time limit, minutes.
    log_dir : str or Path
        Existing folder where SLURM writes ``<job_name>-<jobid>.out``.
    partition, account, qos : str, optional
        SLURM partition, account and quality of service.
    setup : sequence of str
        Shell lines run first (``module load …``).
    rdzv_port : int
        TCP port of the rendezvous on the first node.
    """
    if nodes < 1 or gpus_per_node < 0 or cpus_per_node < 1:
        raise ConfigError(f"need --nodes >= 1, --gpus-per-node >= 0 and --cpus-per-node >= 1, got {nodes}, "
                          f"{gpus_per_node}, {cpus_per_node}")
    args = list(map(str, train_args)) + ([] if "--resume" in train_args else ["--resume"])
    head = '"$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'
    cmd = torchrun_command(args, nnodes="$SLURM_NNODES", nproc_per_node=procs_per_node,
                           rdzv_endpoint=f"${{head_node}}:{int(rdzv_port)}", rdzv_id="$SLURM_JOB_ID")
    quoted = [c if c.startswith("--nnodes") or c.startswith("--rdzv") else shlex.quote(c) for c in cmd]
    sbatch: dict[str, Any] = {"job-name": job_name, "nodes": nodes, "ntasks-per-node": 1, "cpus-per-task": cpus_per_node,
                              "mem": f"{int(math.ceil(mem_gb))}G", "time": int(time_min),
                              "output": str(Path(log_dir).resolve() / f"{job_name}-%j.out")}
    if gpus_per_node:
        sbatch["gpus-per-node"] = gpus_per_node
    if partition:
        sbatch["partition"] = partition
    if account:
        sbatch["account"] = account
    if qos:
        sbatch["qos"] = qos
    lines = ["#!/bin/bash", *(f"#SBATCH --{k}={v}" for k, v in sbatch.items()), "#",
             "# generated by `sapkit train ... --print-slurm`; submit with: sbatch THIS_FILE",
             *(f"# {line}" for line in plan.describe()), "set -euo pipefail", *setup,
             f"export OMP_NUM_THREADS={max(1, cpus_per_node // procs_per_node)}",
             f"head_node={head}",
             "srun --ntasks-per-node=1 " + " ".join(quoted)]
    return "\n".join(lines) + "\n"


def script_from_args(args: argparse.Namespace, config: Config, run_dir: str | Path) -> str:
    """The batch script for a parsed ``sapkit train … --print-slurm`` command line.

    The options and their defaults: :func:`sapkit.cli._cluster.add_cluster_arguments`.

    The training arguments are rebuilt with absolute paths (the job may start elsewhere); the
    log folder ``run_dir/jobs/train`` is created (SLURM does not create it).
    """
    from sapkit.io.run_paths import RunDir

    run_dir = Path(run_dir).resolve()
    profile = Path(args.profile).resolve() if Path(str(args.profile)).is_file() else args.profile
    train_args = [args.task, "--profile", str(profile), "--run-dir", str(run_dir)]
    for item in args.overrides:
        train_args += ["-p", item]
    if args.data:
        train_args += ["--data", str(Path(args.data).resolve())]
    if args.task == "lesion":
        train_args += ["--init", args.init, "--fold", str(args.fold)]
        if args.pretrained:
            train_args += ["--pretrained", str(Path(args.pretrained).resolve())]
        if args.predict:
            train_args.append("--predict")
    procs = args.procs_per_node or max(args.gpus_per_node, 1)
    plan = training_plan(run_dir, config, args.task, world_size=args.nodes * procs, init=args.init, fold=args.fold,
                         data=args.data)
    log_dir = RunDir(run_dir).jobs("train")
    log_dir.mkdir(parents=True, exist_ok=True)
    return slurm_script(train_args, plan=plan, nodes=args.nodes, procs_per_node=procs, gpus_per_node=args.gpus_per_node,
                        cpus_per_node=args.cpus_per_node, mem_gb=args.mem_gb, time_min=args.time_min, log_dir=log_dir,
                        partition=args.partition, account=args.account, qos=args.qos, setup=args.setup or (),
                        rdzv_port=args.rdzv_port)

"""``sapkit train skeleton|ssl|lesion``: train one model into the run folder.

Works the same under DDP: ``torchrun --standalone --nproc_per_node=N --no-python sapkit train ...``
(gloo on CPU, nccl on CUDA); every rank runs the command, only rank 0 writes. ``lesion`` trains one
(init, fold) model with :func:`sapkit.training.cross_validation.finetune` (fold protocol and ``lesion.label_fraction``
of docs/method.md §6); ``--predict`` also writes the held-out fold's probability maps (rank 0). Train
``skeleton``/``ssl`` first for ``--init sap|ssl`` or pass ``--pretrained FILE``. ``--resume``
continues an interrupted run exactly, and refuses a changed configuration (only ``<task>.epochs``
may change). Like a notebook that starts a stage, it records the run's ``config.yaml`` and
``versions.json`` (:func:`sapkit.io.run_record.prepare_run_dir`: unchanged when they already hold
this configuration), which ``sapkit export`` reads. ``--print-slurm --nodes N --gpus-per-node G`` prints a SLURM batch script that runs
the command on N nodes with torchrun (:mod:`sapkit.training.launch`) instead of training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sapkit.cli._cluster import add_cluster_arguments
from sapkit.cli._common import add_profile_arguments, config_from_args, declare_profile, run_dir_from_args
from sapkit.io.output_paths import OutputPlan

if TYPE_CHECKING:
    from sapkit.io.run_paths import RunDir

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=("skeleton", "ssl", "lesion"), help="which model to train")
    add_profile_arguments(parser)
    parser.add_argument("--data", default=None, help="manifest.yaml or its folder (default RUN_DIR/data)")
    parser.add_argument("--init", default="sap", choices=("scratch", "ssl", "sap"), help="lesion initialisation")
    parser.add_argument("--fold", default="0", help="lesion fold id (0..k-1) or 'tune'")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run exactly (same profile and overrides; only epochs may grow)")
    parser.add_argument("--pretrained", default=None,
                        help="checkpoint for --init sap|ssl (default RUN_DIR/skeleton|ssl/model_final.pt); "
                             "any layout: sapkit, {'state_dict': ...}, bare state_dict, module./swin_vit. prefixes")
    parser.add_argument("--predict", action="store_true",
                        help="lesion: also write the held-out fold's probability maps to RUN_DIR/predictions/INIT")
    add_cluster_arguments(parser, array=False)


def outputs(args: argparse.Namespace) -> OutputPlan | None:
    """Reads the data, the profile, the folds and pretrained weights; writes the task's model folder.

    None with ``--print-slurm`` and on DDP ranks other than 0 (they write nothing).
    """
    from sapkit.data.manifest import declare_manifest_inputs
    from sapkit.io.run_paths import RunDir

    if args.print_slurm or int(os.environ.get("RANK", "0")) != 0:
        return None
    plan = OutputPlan("sapkit train")
    declare_profile(plan, args)
    run_dir = run_dir_from_args(args)
    rd = RunDir(run_dir)
    declare_manifest_inputs(plan, RunDir.data_dir(run_dir, args.data))
    plan.writes_folder(run_dir, "--run-dir", lock=True)
    md = rd.skeleton if args.task == "skeleton" else rd.ssl
    if args.task == "lesion":
        md = rd.lesion(args.init, args.fold)
        plan.reads(rd.splits_json, f"the folds {rd.splits_json.name}")
        if args.init != "scratch":
            default = (rd.skeleton if args.init == "sap" else rd.ssl).model("final")
            plan.reads(args.pretrained or default, f"the pretrained {args.init} weights")
        if args.predict:
            plan.writes_folder(rd.predictions(args.init), "--run-dir")
    record = (rd.config_yaml, rd.versions_json) if _records(args, rd) else ()
    for path in (*record, md.model("final"), md.model("best"), md.checkpoint_last, md.log_csv, md.transfer_csv,
                 md.model_card):
        plan.writes(path, "--run-dir", folder=run_dir)
    return plan


def _records(args: argparse.Namespace, rd: RunDir) -> bool:
    """Whether ``train`` writes the run's record: not when the profile is the run's own ``config.yaml`` (an input)."""
    profile = Path(str(args.profile))
    return not (profile.is_file() and os.path.realpath(profile) == os.path.realpath(rd.config_yaml))


def run(args: argparse.Namespace) -> int:
    from sapkit.io.run_paths import ModelDir, RunDir
    from sapkit.io.run_record import prepare_run_dir
    from sapkit.training.engine import read_train_result
    from sapkit.training.cross_validation import finetune
    from sapkit.training.skeleton_task import train_skeleton
    from sapkit.training.ssl_task import train_ssl

    config = config_from_args(args)
    if config.pin_isa:  # before the first tensor operation of this process (docs/reproducibility.md)
        from sapkit.io.machine import pin_isa

        pin_isa()
    run_dir = run_dir_from_args(args)
    if args.print_slurm:
        from sapkit.training.launch import script_from_args

        print(script_from_args(args, config, run_dir), end="")
        return 0
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if rank == 0 and _records(args, RunDir(run_dir)):  # the run's record, as a notebook starting a stage writes it
        prepare_run_dir(run_dir, config)
    predictions: tuple[Path, ...] = ()
    if args.task == "skeleton":
        result = train_skeleton(run_dir, config, data=args.data, resume=args.resume)
    elif args.task == "ssl":
        result = train_ssl(run_dir, config, data=args.data, resume=args.resume)
    else:
        fold = finetune(run_dir, config, init=args.init, fold=args.fold, data=args.data, pretrained=args.pretrained,
                        resume=args.resume, predict=args.predict, rank=rank, world_size=world_size)
        result, predictions = read_train_result(fold.model_dir), fold.predictions
    if rank == 0:
        md = ModelDir(result.out_dir)
        score = f"; best validation score {result.best_score:.4f}" if result.best_score == result.best_score else ""
        print(f"{args.task}: {result.epochs_done} epochs done{score}; "
              f"{(md.model('final') if result.finished else md.checkpoint_last).name} in {result.out_dir}")
        if result.transfer is not None:
            counts = result.transfer["status"].value_counts().to_dict()
            print(f"transfer ({args.init}): {counts}; remaps {result.transfer.attrs.get('remaps') or 'none'}")
        if predictions:
            print(f"{len(predictions)} probability maps in {predictions[0].parent}")
    return 0

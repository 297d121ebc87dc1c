"""``sapkit train skeleton|ssl|lesion``: train one model into the run folder.

Works the same under DDP: ``torchrun --standalone --nproc_per_node=N --no-python sapkit train ...``
(gloo on CPU, nccl on CUDA); every rank runs the command, only rank 0 writes. ``lesion`` needs
``sapkit.sampling`` (instance-balanced sampler); train ``skeleton``/``ssl`` first for ``--init sap|ssl``
or pass ``--pretrained FILE``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sapkit.cli._common import add_profile_arguments, config_from_args
from sapkit.errors import SapkitError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=("skeleton", "ssl", "lesion"), help="which model to train")
    add_profile_arguments(parser)
    parser.add_argument("--data", default=None, help="manifest.yaml or its folder (default RUN_DIR/data)")
    parser.add_argument("--init", default="sap", choices=("scratch", "ssl", "sap"), help="lesion initialisation")
    parser.add_argument("--fold", default="0", help="lesion fold id (0..k-1) or 'tune'")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run exactly")
    parser.add_argument("--pretrained", default=None,
                        help="checkpoint for --init sap|ssl (default RUN_DIR/skeleton|ssl/model_final.pt); "
                             "any layout: sapkit, {'state_dict': ...}, bare state_dict, module./swin_vit. prefixes")


def _lesion(run_dir: Path, config, args: argparse.Namespace):  # noqa: ANN001, ANN202
    try:
        from sapkit.sampling import build_sampler
    except ImportError:
        raise SapkitError("`sapkit train lesion` is not yet available: sapkit.sampling is missing in this install") from None
    from sapkit.data import load_cases
    from sapkit.manifest import load_manifest
    from sapkit.runs import data_dir
    from sapkit.splits import fold_subjects, load_splits, training_subjects
    from sapkit.train import train_lesion

    manifest = load_manifest(data_dir(run_dir, args.data))
    splits = load_splits(run_dir)
    pct = tuple(config.preprocess.clip_percentiles)
    train_cases = load_cases(manifest, cohort="patient", subjects=training_subjects(splits, args.fold), percentiles=pct)
    val_cases = load_cases(manifest, cohort="patient", subjects=fold_subjects(splits, args.fold), percentiles=pct)
    sampler = build_sampler(train_cases, config.lesion, seed=config.seed, rank=int(os.environ.get("RANK", "0")),
                            world_size=int(os.environ.get("WORLD_SIZE", "1")))
    return train_lesion(run_dir, config, init=args.init, fold=args.fold, train_cases=train_cases,
                        val_cases=val_cases, sampler=sampler, pretrained=args.pretrained, resume=args.resume)


def run(args: argparse.Namespace) -> int:
    from sapkit.train import train_skeleton, train_ssl

    config = config_from_args(args)
    run_dir = Path(args.run_dir or f"runs/{config.profile}")
    if args.task == "skeleton":
        result = train_skeleton(run_dir, config, data=args.data, resume=args.resume)
    elif args.task == "ssl":
        result = train_ssl(run_dir, config, data=args.data, resume=args.resume)
    else:
        result = _lesion(run_dir, config, args)
    if int(os.environ.get("RANK", "0")) == 0:
        score = f"; best validation score {result.best_score:.4f}" if result.best_score == result.best_score else ""
        print(f"{args.task}: {result.epochs_done} epochs done{score}; "
              f"{'model_final.pt' if result.finished else 'checkpoint_last.pt'} in {result.out_dir}")
        if result.transfer is not None:
            counts = result.transfer["status"].value_counts().to_dict()
            print(f"transfer ({args.init}): {counts}; remaps {result.transfer.attrs.get('remaps') or 'none'}")
    return 0

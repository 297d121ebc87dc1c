"""``sapkit split MANIFEST --run-dir D``: write splits.json (stratified patient k-fold)."""

from __future__ import annotations

import argparse

from sapkit.cli._common import add_profile_arguments, config_from_args
from sapkit.data.manifest import load_manifest
from sapkit.data.splits import save_splits, splits_from_manifest
from sapkit.io.run_paths import default_run_dir

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it")
    add_profile_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    run_dir = args.run_dir or default_run_dir(config.profile)
    s = config.splits
    splits = splits_from_manifest(load_manifest(args.manifest), k=s.k, tuning_fold=s.tuning_fold, seed=s.seed,
                                  healthy_val_fraction=s.healthy_val_fraction, connectivity=config.lesion.connectivity)
    path = save_splits(splits, run_dir)
    for fold, subjects in splits["folds"].items():
        tag = " (tuning)" if int(fold) == splits["tuning_fold"] else ""
        print(f"fold {fold}{tag}: {len(subjects)} subjects")
    print(f"healthy: {len(splits['healthy']['train'])} train / {len(splits['healthy']['val'])} val subjects")
    print(f"wrote {path}")
    return 0

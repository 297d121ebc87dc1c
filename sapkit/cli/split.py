"""``sapkit split MANIFEST --run-dir D``: write splits.json (stratified patient k-fold)."""

from __future__ import annotations

import argparse

from sapkit.cli._common import add_profile_arguments, config_from_args, declare_profile, run_dir_from_args
from sapkit.data.manifest import declare_manifest_inputs, load_manifest
from sapkit.data.splits import save_splits, splits_from_manifest
from sapkit.io.output_paths import OutputPlan
from sapkit.io.run_paths import RunDir

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it")
    add_profile_arguments(parser)


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the manifest (its lesion masks) and the profile; writes ``RUN_DIR/splits.json``."""
    plan = OutputPlan("sapkit split")
    declare_profile(plan, args)
    declare_manifest_inputs(plan, args.manifest)
    run_dir = run_dir_from_args(args)
    plan.writes_folder(run_dir, "--run-dir", lock=True)
    plan.writes(RunDir(run_dir).splits_json, "--run-dir", folder=run_dir)
    return plan


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    run_dir = run_dir_from_args(args)
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

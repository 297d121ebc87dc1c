"""``sapkit predict``: whole-body lesion probability maps (and masks) for a manifest."""

from __future__ import annotations

import argparse

from sapkit.cli._common import add_profile_arguments, config_from_args, declare_profile
from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="lesion model checkpoint (.pt, sapkit format)")
    parser.add_argument("--manifest", required=True, help="manifest.yaml or the folder holding it")
    parser.add_argument("--out", required=True, help="output folder for <scan_id>_prob.nii.gz etc.")
    parser.add_argument("--threshold", type=float, default=None,
                        help="also write <scan_id>_mask.nii.gz and <scan_id>_lesions.csv at this probability")
    parser.add_argument("--min-volume-ml", type=float, default=0.0, help="drop lesions smaller than this (mL)")
    parser.add_argument("--scan-ids", nargs="+", default=None, help="only these scans (default: all)")
    parser.add_argument("--skeleton-checkpoint", default=None,
                        help="skeleton model, for the bone region of lesions in scans without a skeleton label")
    parser.add_argument("--device", default=None, help="cpu | cuda | auto (default: the profile's device)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_profile_arguments(parser)


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the checkpoints, the manifest and its files; writes the prediction files of each scan into ``--out``."""
    from sapkit.inference.predict import declare_outputs

    plan = OutputPlan("sapkit predict")
    declare_profile(plan, args)
    declare_outputs(plan, args.checkpoint, args.manifest, args.out, threshold=args.threshold, scan_ids=args.scan_ids,
                    skeleton_checkpoint=args.skeleton_checkpoint)
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.inference.predict import predict_manifest

    config = config_from_args(args)
    summary = predict_manifest(
        args.checkpoint, args.manifest, args.out, config=config, threshold=args.threshold,
        min_volume_ml=args.min_volume_ml, scan_ids=args.scan_ids, skeleton_checkpoint=args.skeleton_checkpoint,
        device=args.device, progress=not args.no_progress,
    )
    for row in summary.itertuples():
        lesions = f", {row.n_lesions} lesions" if row.n_lesions >= 0 else ""
        print(f"{row.scan_id}: {row.n_windows_evaluated}/{row.n_windows} windows, {row.seconds:.1f} s{lesions}")
    print(f"wrote {len(summary)} probability maps to {args.out}")
    return 0

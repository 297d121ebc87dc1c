"""``sapkit prepare MANIFEST --out DIR [--reorient RAS] [--spacing X Y Z]``."""

from __future__ import annotations

import argparse

from sapkit.data.prepare import declare_outputs, prepare_manifest
from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it")
    parser.add_argument("--out", required=True, help="new folder for the conformed data and manifest")
    parser.add_argument("--reorient", choices=["RAS", "none"], default="RAS", help="reorient to RAS+ (default) or keep")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help="resample to this spacing in mm (default: keep the T1 grid)")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the manifest and its files; writes the conformed copies and a new manifest into ``--out``."""
    plan = OutputPlan("sapkit prepare")
    declare_outputs(plan, args.manifest, args.out)
    return plan


def run(args: argparse.Namespace) -> int:
    path = prepare_manifest(args.manifest, args.out, reorient=None if args.reorient == "none" else "RAS",
                            spacing_mm=args.spacing)
    print(f"wrote {path}")
    return 0

"""``sapkit check MANIFEST``: validate a manifest and print a per-scan summary."""

from __future__ import annotations

import argparse

from sapkit.io.nifti import orientation_code, read_image, spacing_from_affine
from sapkit.data.manifest import load_manifest

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it")


def outputs(args: argparse.Namespace) -> None:
    """``check`` writes nothing."""
    return None


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    print(repr(manifest))
    print(f"{'scan_id':<24} {'subject':<16} {'cohort':<8} {'site':<8} {'shape':<18} {'spacing (mm)':<20} orient")
    for _, row in manifest.scans.iterrows():
        image, affine, _ = read_image(row["t1"], what="T1")
        spacing = ", ".join(f"{s:.2f}" for s in spacing_from_affine(affine))
        print(f"{row['scan_id']:<24} {row['subject_id']:<16} {row['cohort']:<8} {row['site']:<8} "
              f"{str(image.shape):<18} {spacing:<20} {orientation_code(affine)}")
    print(f"OK: {len(manifest.scans)} scans valid")
    return 0

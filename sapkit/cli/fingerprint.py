"""``sapkit fingerprint MANIFEST --json OUT``: write the dataset fingerprint."""

from __future__ import annotations

import argparse

from sapkit.data.fingerprint import fingerprint_manifest, save_fingerprint
from sapkit.data.manifest import declare_manifest_inputs, load_manifest
from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it")
    parser.add_argument("--json", required=True, dest="json_path", help="output JSON file")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the manifest and its files; writes the ``--json`` file."""
    plan = OutputPlan("sapkit fingerprint")
    declare_manifest_inputs(plan, args.manifest)
    plan.writes(args.json_path, "--json")
    return plan


def run(args: argparse.Namespace) -> int:
    fp = fingerprint_manifest(load_manifest(args.manifest), progress=True)
    path = save_fingerprint(fp, args.json_path)
    d = fp["dataset"]
    print(f"{d['n_scans']} scans, median spacing {d['median_spacing_mm']} mm, shapes {d['shape_min']}..{d['shape_max']}")
    print(f"wrote {path}")
    return 0

"""``sapkit export RUN_DIR --init INIT --fold K --out BUNDLE``: a lesion model as a MONAI bundle.

The bundle (:mod:`sapkit.pipeline.bundle_export`) runs with ``python -m monai.bundle run`` on a
folder of two-channel NIfTI volumes (T1, b1000) without sapkit; ``--inputs MANIFEST`` also writes
those volumes for a sapkit manifest into ``BUNDLE/inputs`` (the bundle's default dataset folder).
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run folder with config.yaml and lesion/<init>/fold_<k>/")
    parser.add_argument("--init", required=True, choices=("scratch", "ssl", "sap"), help="lesion initialisation")
    parser.add_argument("--fold", required=True, help="fold id (0..k-1) or 'tune'")
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--which", default="final", choices=("final", "best"), help="model_final.pt or model_best.pt")
    parser.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of the run's config.yaml, e.g. -p infer.overlap=0.5 (repeatable)")
    parser.add_argument("--authors", default="sapkit user", help="metadata authors (and copyright holder)")
    parser.add_argument("--license", dest="license_name",
                        default="MIT (sapkit code); the weights inherit the terms of their training data",
                        help="licence statement written to metadata.json and docs/license.txt")
    parser.add_argument("--version", dest="bundle_version", default=None, help="bundle version (default: sapkit's)")
    parser.add_argument("--inputs", default=None, metavar="MANIFEST",
                        help="also write MANIFEST's scans as two-channel NIfTI files into BUNDLE/inputs")


def run(args: argparse.Namespace) -> int:
    from sapkit.config import parse_overrides
    from sapkit.pipeline.bundle_export import BundleDir, export_bundle, stack_channels

    out = export_bundle(args.run_dir, init=args.init, fold=args.fold, out=args.out, which=args.which,
                        overrides=parse_overrides(args.overrides), authors=args.authors,
                        license_name=args.license_name, version=args.bundle_version)
    bundle = BundleDir(out)
    print(f"wrote MONAI bundle {out} ({bundle.metadata_json.name}, {bundle.inference_json.name}, "
          f"{bundle.model_pt.name}, {bundle.readme.name})")
    if args.inputs:
        written = stack_channels(args.inputs, bundle.inputs)
        print(f"wrote {len(written)} two-channel inputs to {bundle.inputs}")
    print(f"run it: python -m monai.bundle run --config_file {bundle.inference_json} --bundle_root {out} "
          f"--dataset_dir INPUTS --output_dir OUT")
    return 0

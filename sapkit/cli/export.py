"""``sapkit export RUN_DIR --init INIT --fold K --out BUNDLE``: a lesion model as a MONAI bundle.

The bundle (:mod:`sapkit.pipeline.bundle_export`) runs with ``python -m monai.bundle run`` on a
folder of two-channel NIfTI volumes (T1, b1000) without sapkit; ``--inputs MANIFEST`` also writes
those volumes for a sapkit manifest into ``BUNDLE/inputs`` (the bundle's default dataset folder).
"""

from __future__ import annotations

import argparse

from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


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


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the run's configuration, the model and its card (and ``--inputs``' scans); writes the bundle into ``--out``."""
    from sapkit.data.manifest import declare_manifest_inputs
    from sapkit.io.run_paths import RunDir
    from sapkit.io.folders import BundleDir

    plan = OutputPlan("sapkit export")
    rd = RunDir(args.run_dir)
    md = rd.lesion(args.init, args.fold)
    plan.reads_folder(rd.path, "run folder")
    plan.reads_folder(md.path, "model folder")
    for path, what in ((rd.config_yaml, "the run's configuration"), (md.model(args.which), "the model checkpoint"),
                       (md.model_card, "the model card"), (rd.fingerprint_json, "the dataset fingerprint"),
                       (rd.threshold_json, "the tuned thresholds")):
        plan.reads(path, what)
    bundle = BundleDir(args.out)
    plan.writes_folder(args.out, "--out", lock=True)
    names = [bundle.metadata_json, bundle.inference_json, bundle.model_pt, bundle.readme, bundle.license_txt]
    if args.inputs:
        manifest = declare_manifest_inputs(plan, args.inputs)
        ids = [] if manifest is None else list(manifest.scans["scan_id"])
        names += [bundle.input_volume(scan_id) for scan_id in ids]
    for path in names:
        plan.writes(path, "--out", folder=args.out)
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.config import parse_overrides
    from sapkit.io.folders import BundleDir
    from sapkit.pipeline.bundle_export import export_bundle, stack_channels

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

"""``sapkit export RUN_DIR --init INIT --fold K --out BUNDLE``: a lesion model as a MONAI bundle.

The bundle (:mod:`sapkit.pipeline.bundle_export`) runs with ``python -m monai.bundle run`` on a
folder of two-channel NIfTI volumes (T1, b1000) without sapkit and writes ``sapkit predict``'s
probability maps and, at the run's tuned threshold (or ``--threshold``), its lesion masks.
``--inputs MANIFEST --scans ID …`` (or ``--scans held-out``) also writes those scans — and only
those — into ``BUNDLE/inputs`` (the bundle's default dataset folder). The bundle is built next to
``--out`` and renamed into place, so a failure leaves ``--out`` as it was.
"""

from __future__ import annotations

import argparse

from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run folder with config.yaml and lesion/<init>/fold_<k>/")
    parser.add_argument("--init", required=True, choices=("scratch", "ssl", "sap"), help="lesion initialisation")
    parser.add_argument("--fold", required=True, help="fold id (0..k-1) or 'tune'")
    parser.add_argument("--out", required=True, help="bundle folder to write (new, or an earlier bundle: replaced whole)")
    parser.add_argument("--which", default="final", choices=("final", "best"), help="model_final.pt or model_best.pt")
    parser.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of the run's config.yaml, e.g. -p infer.overlap=0.5 (repeatable)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="threshold of the bundle's lesion mask (default: the run's tuned one, eval/threshold.json)")
    parser.add_argument("--min-volume-ml", type=float, default=0.0,
                        help="drop lesions smaller than this from the mask (mL; as sapkit predict --min-volume-ml)")
    parser.add_argument("--authors", default="sapkit user", help="metadata authors (and copyright holder)")
    parser.add_argument("--license", dest="license_name",
                        default="MIT (sapkit code); the weights inherit the terms of their training data",
                        help="licence statement written to metadata.json and LICENSE")
    parser.add_argument("--version", dest="bundle_version", default=None, help="bundle version (default: sapkit's)")
    parser.add_argument("--inputs", default=None, metavar="MANIFEST",
                        help="also write scans of MANIFEST as two-channel NIfTI files into BUNDLE/inputs (with --scans)")
    parser.add_argument("--scans", nargs="+", default=None, metavar="ID",
                        help="with --inputs: the scan ids to copy, or 'held-out' for the scans of the fold's held-out "
                             "patients (a bundle is shared: it holds only these)")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the run's configuration, the model and its card (and ``--inputs``' scans); writes the bundle into ``--out``.

    The bundle is built in a staging folder next to ``--out``, which holds the writer lock
    (:func:`sapkit.pipeline.bundle_export.export_bundle` takes it; nothing of it is left in the bundle).
    """
    from sapkit.data.manifest import declare_manifest_inputs
    from sapkit.io.folders import BundleDir
    from sapkit.io.run_paths import RunDir
    from sapkit.pipeline.bundle_export import select_scans

    plan = OutputPlan("sapkit export")
    rd = RunDir(args.run_dir)
    md = rd.lesion(args.init, args.fold)
    plan.reads_folder(rd.path, "run folder")
    plan.reads_folder(md.path, "model folder")
    for path, what in ((rd.config_yaml, "the run's configuration"), (md.model(args.which), "the model checkpoint"),
                       (md.model_card, "the model card"), (rd.fingerprint_json, "the dataset fingerprint"),
                       (rd.threshold_json, "the tuned thresholds"), (rd.splits_json, "the folds")):
        plan.reads(path, what)
    bundle = BundleDir(args.out)
    plan.writes_folder(args.out, "--out")
    plan.writes_folder(bundle.staging, "--out")
    names = bundle.files()
    args.scan_ids = None
    if args.scans and not args.inputs:
        from sapkit.errors import ConfigError

        raise ConfigError("--scans chooses scans of --inputs MANIFEST; add --inputs, or drop --scans")
    if args.inputs:
        manifest = declare_manifest_inputs(plan, args.inputs)
        if manifest is not None:
            args.scan_ids = select_scans(rd.path, manifest, args.scans, args.fold)
            names += [bundle.input_volume(scan_id) for scan_id in args.scan_ids]
    for path in names:
        plan.writes(path, "--out", folder=args.out)
    return plan


def run(args: argparse.Namespace) -> int:
    import json

    from sapkit.config import parse_overrides
    from sapkit.io.folders import BundleDir
    from sapkit.pipeline.bundle_export import export_bundle

    out = export_bundle(args.run_dir, init=args.init, fold=args.fold, out=args.out, which=args.which,
                        overrides=parse_overrides(args.overrides), authors=args.authors,
                        license_name=args.license_name, version=args.bundle_version, threshold=args.threshold,
                        min_volume_ml=args.min_volume_ml, inputs=args.inputs,
                        scans=getattr(args, "scan_ids", None) or args.scans)
    bundle = BundleDir(out)
    threshold = json.loads(bundle.metadata_json.read_text())["sapkit"]["threshold"]
    print(f"wrote MONAI bundle {out} ({', '.join(p.relative_to(out).as_posix() for p in bundle.files())})")
    if threshold is None:
        print("note: the run has no tuned threshold for this init (eval/threshold.json): the bundle writes probability "
              "maps only; export again with --threshold T for lesion masks")
    else:
        print(f"lesion masks at probability >= {threshold:g} (sapkit predict's post-processing: body mask, stored map)")
    if args.inputs:
        print(f"wrote {len(args.scan_ids or [])} two-channel inputs to {bundle.inputs}: {', '.join(args.scan_ids or [])}")
    print(f"run it: python -m monai.bundle run --config_file {bundle.inference_json} --bundle_root {out} "
          f"--dataset_dir INPUTS --output_dir OUT")
    return 0

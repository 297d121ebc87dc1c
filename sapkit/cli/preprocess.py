"""``sapkit preprocess INPUT --out DIR [--jobs N | --executor local|slurm [--resume]] [--labels CSV] [--rules YAML]``.

Raw scans (a DICOM folder or a stations CSV) → kit manifest, QC tables and figures.
"""

from __future__ import annotations

import argparse

from pathlib import Path

from sapkit.cli._cluster import add_cluster_arguments, resources_from_args
from sapkit.cli._common import add_profile_arguments, config_from_args, declare_profile, run_dir_from_args
from sapkit.io.output_paths import OutputPlan
from sapkit.io.run_paths import RunDir

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a DICOM folder (any nesting) or a stations CSV (per-station NIfTI files)")
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/data); never inside INPUT")
    parser.add_argument("--jobs", type=int, default=None, help="local worker processes (default raw.jobs, 1)")
    parser.add_argument("--labels", default=None, help="labels CSV for DICOM input (scan_id, station, skeleton_label, "
                                                       "lesion_label, fine_label)")
    parser.add_argument("--rules", default=None, help="series classification rules YAML (default: the packaged rules.yaml)")
    parser.add_argument("--force", action="store_true", help="recompute scans whose outputs are up to date")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_profile_arguments(parser)
    add_cluster_arguments(parser, array=True)


def _out_dir(args: argparse.Namespace) -> tuple[Path, str]:
    """``--out``, else ``RUN_DIR/data``, and the option that set it."""
    return (Path(args.out), "--out") if args.out else (RunDir(run_dir_from_args(args)).data, "--run-dir")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the input tree (or stations CSV), labels and rules; writes the kit data folder (never inside the input)."""
    from sapkit.preprocessing.cohort import declare_outputs

    plan = OutputPlan("sapkit preprocess")
    declare_profile(plan, args)
    out, flag = _out_dir(args)
    declare_outputs(plan, args.input, out, labels=args.labels, rules=args.rules, flag=flag)
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.preprocessing.cohort import preprocess

    from sapkit.errors import ConfigError
    from sapkit.io.folders import PreprocessDir

    if args.resume and args.executor is None:
        raise ConfigError("--resume needs --executor local|slurm (without it, finished scans are reused anyway)")
    config = config_from_args(args)
    out, _ = _out_dir(args)
    result = preprocess(args.input, out, config.raw, jobs=args.jobs, labels=args.labels, rules=args.rules,
                        force=args.force, progress=not args.no_progress, executor=args.executor,
                        resources=resources_from_args(args), resume=args.resume, wait=args.wait)
    if result is None:
        print(f"submitted one job per scan; states in {PreprocessDir(out).jobs}/states.csv. When the jobs are done, "
              f"run the same command without --executor: finished scans are reused and the manifest is written")
        return 0
    scans = result.scans
    for _, row in scans.iterrows():
        done = row["status"] in ("ok", "reused", "warned")
        note = (row["warnings"] or "") if done else row["error"]
        print(f"  {row['scan_id']:<20} {row['status']:<7} {note}")
    failed = int((~scans["status"].isin(["ok", "reused", "warned"])).sum())
    print(f"{len(scans) - failed} of {len(scans)} scans preprocessed; QC: {result.out_dir / 'qc'}")
    if result.series is not None:
        unknown = int(result.series["sequence"].isin(["unknown", "unusable"]).sum())
        print(f"{len(result.series)} DICOM series sorted ({unknown} unknown or unusable: see qc/series.csv)")
    if result.manifest is None:
        print("no scan succeeded: no manifest written (see qc/scans.csv)")
        return 1
    print(f"wrote {result.manifest}")
    return 0

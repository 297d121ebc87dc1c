"""``sapkit synth --profile smoke|demo|paper --out DIR [-p synth.key=value]``: generate the cohorts."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sapkit.cli._common import add_profile_arguments, config_from_args, declare_profile, run_dir_from_args
from sapkit.io.output_paths import OutputPlan
from sapkit.io.run_paths import RunDir

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/data)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--raw", action="store_true", help="write multi-station raw acquisitions (DICOM + per-station "
                                                         "NIfTI, truth kept) for sapkit preprocess (default out RUN_DIR/raw)")
    add_profile_arguments(parser)


def _out_dir(args: argparse.Namespace) -> tuple[Path, str]:
    """``--out``, else ``RUN_DIR/data`` (``RUN_DIR/raw`` with ``--raw``), and the option that set it."""
    if args.out:
        return Path(args.out), "--out"
    rd = RunDir(run_dir_from_args(args))
    return (rd.raw if args.raw else rd.data), "--run-dir"


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the profile; writes the cohort (scans, manifest, tables) into its output folder."""
    plan = OutputPlan("sapkit synth")
    declare_profile(plan, args)
    out, flag = _out_dir(args)
    plan.writes_folder(out, flag, lock=True)
    names = ["stations.csv"] if args.raw else ["manifest.yaml", "manifest.csv", "lesions.csv", "synth_config.json"]
    plan.writes_in(out, names, flag)
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.data.phantom import generate_cohorts, make_grid

    config = config_from_args(args)
    out, _ = _out_dir(args)
    if args.raw:
        from sapkit.data.phantom.raw import generate_raw_cohort

        start = time.perf_counter()
        generate_raw_cohort(out, config.synth, config.raw.synth, progress=not args.no_progress)
        print(f"raw cohort ({config.raw.synth.n_stations} stations per sequence) in {time.perf_counter() - start:.1f} s: "
              f"{out}/dicom (+ labels.csv), {out}/stations.csv, truth in {out}/truth")
        return 0
    start = time.perf_counter()
    manifest = generate_cohorts(out, config.synth, progress=not args.no_progress)
    s = config.synth
    grid = make_grid(s)
    print(f"{s.n_healthy_subjects * s.scans_per_subject} healthy scans ({s.n_healthy_subjects} subjects) and "
          f"{s.n_patients} patient scans, grid {grid.shape} at {grid.spacing_mm} mm, seed {s.seed}, "
          f"in {time.perf_counter() - start:.1f} s")
    print(f"wrote {manifest}")
    return 0

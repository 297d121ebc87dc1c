"""``sapkit synth --profile smoke|demo|paper --out DIR [-p synth.key=value]``: generate the cohorts."""

from __future__ import annotations

import argparse
import time

from sapkit.cli._common import add_profile_arguments, config_from_args

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/data)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--raw", action="store_true", help="write multi-station raw acquisitions (DICOM + per-station "
                                                         "NIfTI, truth kept) for sapkit preprocess (default out RUN_DIR/raw)")
    add_profile_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sapkit.data.phantom import generate_cohorts, make_grid
    from sapkit.io.run_paths import RunDir, default_run_dir

    config = config_from_args(args)
    if args.raw:
        from sapkit.data.phantom.raw import generate_raw_cohort

        out = args.out or RunDir(args.run_dir or default_run_dir(config.profile)).raw
        start = time.perf_counter()
        generate_raw_cohort(out, config.synth, config.raw.synth, progress=not args.no_progress)
        print(f"raw cohort ({config.raw.synth.n_stations} stations per sequence) in {time.perf_counter() - start:.1f} s: "
              f"{out}/dicom (+ labels.csv), {out}/stations.csv, truth in {out}/truth")
        return 0
    out = args.out or RunDir(args.run_dir or default_run_dir(config.profile)).data
    start = time.perf_counter()
    manifest = generate_cohorts(out, config.synth, progress=not args.no_progress)
    s = config.synth
    grid = make_grid(s)
    print(f"{s.n_healthy_subjects * s.scans_per_subject} healthy scans ({s.n_healthy_subjects} subjects) and "
          f"{s.n_patients} patient scans, grid {grid.shape} at {grid.spacing_mm} mm, seed {s.seed}, "
          f"in {time.perf_counter() - start:.1f} s")
    print(f"wrote {manifest}")
    return 0

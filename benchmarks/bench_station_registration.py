"""DWI shift error with and without station-to-station registration, on the synthetic truth.

A synthetic raw cohort (default: the demo grid, 3 mm, 5 stations per sequence, DWI 6 × 6 × 4.5 mm
with b = 50 and 1000 s/mm², every DWI station shifted by a known 2–8 mm vector; 2 healthy subjects
× 2 scans + 3 patients = 7 scans) is preprocessed twice from its stations CSV with the profile's
``raw`` settings, once per ``raw.register.dwi_stations``:

- ``none``: every DWI station registered to the stitched T1 on its own (the default);
- ``chained``: DWI stations registered to each other outwards from the centre station, then the
  stitched whole-body DWI to the T1 with one transform (the authors' order).

The error of a station is ``|recovered shift − true shift|`` (mm,
:func:`sapkit.preprocessing.scoring.shift_errors`); the script prints its median and maximum over
every station of every scan, the per-scan maxima and the seconds of the registration step.

Usage::

    python benchmarks/bench_station_registration.py             # ~5 min on 2 cores
    python benchmarks/bench_station_registration.py --quick     # 6 mm grid, 2 scans, ~10 s
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sapkit.config import RawSynthConfig, load_config  # noqa: E402
from sapkit.data.phantom.raw import generate_raw_cohort  # noqa: E402
from sapkit.io.folders import PreprocessDir  # noqa: E402
from sapkit.preprocessing.cohort import preprocess  # noqa: E402
from sapkit.preprocessing.scoring import shift_errors  # noqa: E402

_MODES = ("none", "chained")


def _run(raw: Path, out: Path, config, mode: str) -> tuple[dict[str, np.ndarray], list[float]]:
    """Preprocess ``raw`` with ``dwi_stations=mode``: per-scan station errors (mm), register seconds."""
    raw_config = dataclasses.replace(config.raw, register=dataclasses.replace(config.raw.register, dwi_stations=mode))
    result = preprocess(raw / "stations.csv", out, raw_config, jobs=1, progress=False)
    assert set(result.scans["status"]) == {"ok"}, result.scans
    errors, seconds = {}, []
    for scan_id in result.scans["scan_id"]:
        errors[scan_id] = shift_errors(out, raw, scan_id)
        qc = json.loads((PreprocessDir(out).path / "scans" / scan_id / "qc.json").read_text())
        seconds.append(float(qc["summary"]["seconds"]["register"]))
    return errors, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="profile whose synth grid and raw settings are used")
    parser.add_argument("--healthy", type=int, default=2, help="healthy subjects")
    parser.add_argument("--scans-per-subject", type=int, default=2)
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="6 mm grid, 480 mm tall, 1 healthy scan + 1 patient")
    args = parser.parse_args()
    import SimpleITK as sitk

    config = load_config(args.profile)
    synth = dataclasses.replace(config.synth, n_healthy_subjects=args.healthy, scans_per_subject=args.scans_per_subject,
                                n_patients=args.patients)
    raw_synth: RawSynthConfig = config.raw.synth
    if args.quick:
        synth = dataclasses.replace(synth, n_healthy_subjects=1, scans_per_subject=1, n_patients=1, spacing_mm=6.0,
                                    height_mm=480.0)
        raw_synth = dataclasses.replace(raw_synth, overlap_mm=24.0)
    print("# bench_station_registration — DWI shift error, raw.register.dwi_stations none vs chained")
    print(f"python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · numpy {np.__version__} · "
          f"SimpleITK {sitk.Version.VersionString()}")
    spacing = synth.spacing_mm
    print(f"cohort: profile {args.profile}, {spacing} mm grid, {synth.height_mm} mm tall, {raw_synth.n_stations} stations "
          f"(overlap {raw_synth.overlap_mm} mm), DWI {spacing * raw_synth.dwi_inplane_factor:g} × "
          f"{spacing * raw_synth.dwi_inplane_factor:g} × {spacing * raw_synth.dwi_slice_factor:g} mm, true shifts "
          f"{raw_synth.shift_mm[0]:g}–{raw_synth.shift_mm[1]:g} mm; {synth.n_healthy_subjects} healthy × "
          f"{synth.scans_per_subject} scans + {synth.n_patients} patients; seed {synth.seed}; "
          f"DWI → T1 transform: {config.raw.register.transform}")
    with tempfile.TemporaryDirectory(prefix="sapkit-bench-station-reg-") as tmp:
        raw = Path(tmp) / "raw"
        start = time.perf_counter()
        generate_raw_cohort(raw, synth, raw_synth, progress=False)
        print(f"raw cohort written in {time.perf_counter() - start:.1f} s\n")
        results = {}
        for mode in _MODES:
            start = time.perf_counter()
            errors, seconds = _run(raw, Path(tmp) / f"out_{mode}", config, mode)
            results[mode] = (errors, seconds, time.perf_counter() - start)
    print("| raw.register.dwi_stations | stations | median error (mm) | max error (mm) | per-scan max (mm) | "
          "register step (s, median per scan) | preprocess (s, all scans) |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for mode, (errors, seconds, total) in results.items():
        every = np.concatenate(list(errors.values()))
        per_scan = " ".join(f"{e.max():.2f}" for e in errors.values())
        print(f"| {mode} | {every.size} | {np.median(every):.2f} | {every.max():.2f} | {per_scan} | "
              f"{np.median(seconds):.2f} | {total:.0f} |")


if __name__ == "__main__":
    main()

"""Raw preprocessing: one 5-station subject end to end vs just reading its files.

One synthetic patient of the demo grid (3 mm, T1 + DWI with b = 50 and 1000 s/mm², 5 stations per
sequence) is written as raw acquisitions (DICOM and per-station NIfTI). The peer is the floor any
pipeline pays: reading every file of the subject once — pydicom decoding every DICOM slice, and
nibabel loading every station NIfTI. sapkit's figure is ``sapkit preprocess`` end to end on one scan
(``jobs=1``): conversion, ADC, N4, station standardisation, stitching, DWI → T1 registration,
writing the outputs, QC. The issue's target: ≤ 60 s on 2 cores.

Usage::

    python benchmarks/bench_preprocess.py            # ~1-2 min
    python benchmarks/bench_preprocess.py --repeats 2

Prints the environment, seconds per step of the pipeline and the ratio to reading the files.
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

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sapkit.config import load_config  # noqa: E402
from sapkit.data.phantom.raw import generate_raw_cohort  # noqa: E402
from sapkit.preprocessing.cohort import preprocess  # noqa: E402


def _read_dicom(folder: Path) -> float:
    import pydicom

    start = time.perf_counter()
    total = 0.0
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        total += float(ds.pixel_array.sum())
    return time.perf_counter() - start


def _read_nifti(folder: Path) -> float:
    start = time.perf_counter()
    for path in sorted(folder.rglob("*.nii.gz")):
        np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32)).sum()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each timing (the best is kept)")
    args = parser.parse_args()
    import pydicom
    import SimpleITK as sitk

    print("# bench_preprocess — sapkit preprocess on one 5-station subject vs reading its files")
    print(f"python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · numpy {np.__version__} · "
          f"SimpleITK {sitk.Version.VersionString()} · pydicom {pydicom.__version__} · nibabel {nib.__version__}")
    config = load_config("demo")
    synth = dataclasses.replace(config.synth, n_healthy_subjects=0, n_patients=1)
    with tempfile.TemporaryDirectory(prefix="sapkit-bench-preprocess-") as tmp:
        raw = Path(tmp) / "raw"
        start = time.perf_counter()
        generate_raw_cohort(raw, synth, config.raw.synth, progress=False)
        n_dcm = len(list((raw / "dicom").rglob("*.dcm")))
        print(f"subject: demo grid ({synth.spacing_mm} mm), {config.raw.synth.n_stations} stations per sequence, "
              f"b = {list(config.raw.synth.b_values)}; {n_dcm} DICOM files; written in {time.perf_counter() - start:.1f} s")
        read_dicom = min(_read_dicom(raw / "dicom") for _ in range(args.repeats))
        read_nifti = min(_read_nifti(raw / "nifti") for _ in range(args.repeats))
        rows = []
        for form, source, labels in (("stations CSV", raw / "stations.csv", None), ("DICOM", raw / "dicom", raw / "labels.csv")):
            best, steps = float("inf"), {}
            for k in range(args.repeats):
                out = Path(tmp) / f"out_{form.split()[0]}_{k}"
                start = time.perf_counter()
                result = preprocess(source, out, config.raw, labels=labels, jobs=1, progress=False)
                seconds = time.perf_counter() - start
                assert result.scans["status"].tolist() == ["ok"], result.scans
                if seconds < best:
                    best = seconds
                    steps = json.loads((out / "scans" / "p000_s0" / "qc.json").read_text())["summary"]["seconds"]
            rows.append((form, best, steps))
    print(f"\nread every file once  : DICOM (pydicom, {n_dcm} slices) {read_dicom:6.2f} s · "
          f"station NIfTI (nibabel) {read_nifti:6.2f} s")
    for form, seconds, steps in rows:
        peer = read_dicom if form == "DICOM" else read_nifti
        print(f"sapkit preprocess ({form:<12}): {seconds:6.2f} s = {seconds / peer:5.1f}× reading its files "
              f"({'within' if seconds <= 60 else 'OVER'} the 60 s target)")
        print("    per step (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))


if __name__ == "__main__":
    main()

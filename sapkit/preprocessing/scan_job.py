"""One scan as a unit of work: its digest, its preprocessing into its own folder, its QC record.

:func:`run_scan` preprocesses one scan (:func:`sapkit.preprocessing.pipeline.preprocess_scan`),
writes its files into a hidden staging folder and renames it into place, so a scan folder is
either complete or absent; it never raises (a failure is returned as a record with
``status: failed``). :func:`scan_digest` fingerprints a scan's inputs and settings, and
:func:`reusable_record` tells whether a finished folder was made from the same ones. The cohort
(:mod:`sapkit.preprocessing.cohort`) runs it in this process or in local workers, a job array
(:mod:`sapkit.preprocessing.jobs`) one element per scan, and Nyúl standardisation reruns it for a
scan standardised with an older standard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from sapkit import __version__
from sapkit.config import RawConfig
from sapkit.errors import AcquisitionError, SapkitError
from sapkit.io.atomic import STAGING_DIR, atomic_write_text
from sapkit.io.nifti import save_nifti
from sapkit.preprocessing.bias import body_mask
from sapkit.preprocessing.dixon import DIXON_COLUMNS
from sapkit.io.folders import PreprocessDir
from sapkit.preprocessing.nyul import landmarks
from sapkit.preprocessing.pipeline import ProcessedScan, preprocess_scan
from sapkit.preprocessing.qc import seam_montage, write_png
from sapkit.preprocessing.stations import ScanSource

__all__ = ["scan_digest", "run_scan", "reusable_record"]

_OUTPUT_KEYS = {"skeleton_label": "skeleton", "lesion_label": "lesion", "fine_label": "fine"}


def scan_digest(source: ScanSource, config: RawConfig, rules_text: str = "") -> str:
    """SHA-256 of a scan's inputs (files, sizes, modification times), identity and shaping settings.

    Descriptions (where a station came from) do not count, so the same files listed by another
    CSV give the same digest; ``jobs`` and the other settings that do not change a scan do not either.
    """
    files = [f for st in source.stations for _, fs in st.images for f in fs]
    files += [p for st in source.stations for _, p in st.labels] + [p for _, p in source.labels]
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) if os.path.exists(f) else (f, -1, -1) for f in files]
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("input", "synthetic", "labels", "jobs", "synth")}
    identity = [source.scan_id, source.subject_id, source.site, source.cohort, list(source.labels), list(source.problems),
                [(st.sequence, st.station, st.kind, st.images, st.labels) for st in source.stations]]  # not descriptions
    blob = json.dumps([identity, stats, settings, hashlib.sha256(rules_text.encode()).hexdigest(), __version__],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _write_outputs(processed: ProcessedScan, source: ScanSource, out: PreprocessDir, config: RawConfig) -> tuple[Path, dict[str, str]]:
    """Write one scan's files into a fresh staging folder; return it and the manifest paths."""
    staging = out.scans_dir / STAGING_DIR / f"{source.scan_id}-{uuid.uuid4().hex[:8]}"
    files = {"t1": ("t1", processed.t1, np.float32), "b1000": ("b1000", processed.b1000, np.float32)}
    if processed.adc is not None and config.write_adc:
        files["adc"] = ("adc", processed.adc, np.float32)
    for sequence, array in processed.dixon.items():  # Dixon water/fat: only when the scan has them
        files[DIXON_COLUMNS[sequence]] = (DIXON_COLUMNS[sequence], array, np.float32)
    for name, array in processed.labels.items():
        small = array.size == 0 or (array.min() >= 0 and array.max() < 256)
        files[name] = (_OUTPUT_KEYS.get(name, name), array, np.uint8 if small else np.int16)
    rel = {}
    for column, (key, array, dtype) in files.items():
        final = out.scan_file(source.scan_id, key)
        save_nifti(array, processed.affine, staging / final.name, dtype=dtype)
        rel[column] = final.relative_to(out.path).as_posix()
    write_png(staging / out.scan_qc_png(source.scan_id).name, seam_montage(processed))
    return staging, rel


def _commit(staging: Path, final: Path) -> None:
    if final.exists():
        old = staging.parent / f"{final.name}-old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    try:
        staging.parent.rmdir()
    except OSError:
        pass


def run_scan(source: ScanSource, config: RawConfig, out_dir: str | Path, digest: str) -> dict[str, Any]:
    """Preprocess and write one scan; never raises (a failure is returned as ``status: failed``, a
    defective acquisition under ``raw.on_incomplete=fail`` as ``incomplete`` or ``inconsistent``).

    Returns the scan's QC record: ``summary`` (a row of ``qc/scans.csv``), ``stations`` (rows of
    ``qc/stations.csv``), ``files`` (manifest columns → paths relative to ``out_dir``).
    """
    out = PreprocessDir(out_dir)
    start = time.perf_counter()
    base = {"scan_id": source.scan_id, "subject_id": source.subject_id, "site": source.site, "cohort": source.cohort}
    try:
        processed = preprocess_scan(source, config)
        record: dict[str, Any] = {"status": "ok", "digest": digest, "summary": dict(processed.summary),
                                  "stations": processed.stations.to_dict(orient="records")}
        if config.nyul.enabled:
            mask = body_mask(processed.t1)
            record["landmarks"] = {ch: landmarks(getattr(processed, ch), mask, config.nyul.percentiles).tolist()
                                   for ch in ("t1", "b1000")}
        staging, record["files"] = _write_outputs(processed, source, out, config)
        record["summary"]["seconds_total"] = round(time.perf_counter() - start, 2)
        atomic_write_text(staging / "qc.json", json.dumps(record, indent=1, default=_json_default))
        _commit(staging, out.scan_dir(source.scan_id))
        return record
    except Exception as exc:  # noqa: BLE001 - one failed scan must not stop the cohort
        shutil.rmtree(out.scan_dir(source.scan_id), ignore_errors=True)
        message = str(exc) if isinstance(exc, SapkitError) else f"{type(exc).__name__}: {exc}"
        detail = "" if isinstance(exc, SapkitError) else traceback.format_exc(limit=3)
        status = exc.status if isinstance(exc, AcquisitionError) else "failed"
        return {"status": status, "summary": {**base, "status": status, "error": message,
                                                "seconds_total": round(time.perf_counter() - start, 2)},
                "stations": [], "files": {}, "traceback": detail}


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    return str(value)


def reusable_record(source: ScanSource, out: PreprocessDir, digest: str) -> dict | None:
    """The QC record of a finished scan folder made from the same inputs and settings (``digest``); else None."""
    path = out.scan_qc_json(source.scan_id)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    files_ok = all((out.path / p).is_file() for p in record.get("files", {}).values())
    return record if record.get("digest") == digest and record.get("status") == "ok" and files_ok else None

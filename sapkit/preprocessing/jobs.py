"""``sapkit preprocess --executor local|slurm``: one submitit job-array element per scan.

Each element runs :func:`sapkit.preprocessing.scan_job.run_scan` for one scan on a cluster node (or
as a submitit local job) and writes the scan folder exactly as the in-process path does; the
submitter reads every finished scan's ``qc.json`` back. A scan whose acquisition check names a
defect (``incomplete``, ``inconsistent``; ``raw.on_incomplete: fail``) finishes its element too:
its record (status, message, digest) goes to ``OUT/jobs/preprocess/defects/<scan_id>.json`` and
from there to ``qc/scans.csv`` as with ``--jobs``. A scan that raises marks its element ``failed``
(its error in ``OUT/jobs/preprocess/states.csv`` and ``qc/scans.csv``), so ``--resume`` resubmits
only failed or never-run scans, and finished ones whose inputs or settings changed since (their
digest). With ``--no-wait`` (SLURM) nothing is aggregated:
rerun the same command without ``--executor`` when the jobs are done — finished scans are reused
(same inputs and settings) and the manifest is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sapkit.config import RawConfig
from sapkit.errors import SapkitError
from sapkit.io.atomic import atomic_write_text
from sapkit.jobs.executors import Resources, run_array
from sapkit.io.folders import PreprocessDir
from sapkit.preprocessing.scan_job import run_scan
from sapkit.preprocessing.stations import ScanSource

__all__ = ["scan_element", "run_scans_as_array"]


def scan_element(source: ScanSource, config: RawConfig, out_dir: str, digest: str) -> str:
    """What one array element runs: preprocess one scan; raise only when it failed (so the state says so).

    A named defect (``run_scan``'s ``incomplete``/``inconsistent``) is a result, not a crash: its
    record is written to :meth:`~sapkit.io.folders.PreprocessDir.defect_json` and the element finishes. Returns the path of the
    scan's record (``qc.json`` or the defect's).
    """
    out = PreprocessDir(out_dir)
    defect = out.defect_json(source.scan_id)
    defect.unlink(missing_ok=True)
    record = run_scan(source, config, out_dir, digest)
    if record["status"] == "failed":
        raise SapkitError(record["summary"].get("error") or "failed")
    if record["status"] != "ok":
        atomic_write_text(defect, json.dumps({**record, "digest": digest}, indent=1, default=str))
        return str(defect)
    return str(out.scan_qc_json(source.scan_id))


def _finished_record(out: PreprocessDir, source: ScanSource, digest: str) -> dict | None:
    """The record an element left for these inputs and settings (``digest``): ``qc.json`` or a defect's; else None."""
    for path in (out.scan_qc_json(source.scan_id), out.defect_json(source.scan_id)):
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        if record.get("digest") == digest and all((out.path / p).is_file() for p in record.get("files", {}).values()):
            return record
    return None


def _failed_record(source: ScanSource, error: str) -> dict[str, Any]:
    error = error.removeprefix("SapkitError: ")
    return {"status": "failed", "stations": [], "files": {}, "summary": {
        "scan_id": source.scan_id, "subject_id": source.subject_id, "site": source.site, "cohort": source.cohort,
        "status": "failed", "error": error or "failed"}}


def run_scans_as_array(todo: list[tuple[ScanSource, str]], config: RawConfig, out: PreprocessDir, *,
                       executor: str, resources: Resources | None = None, resume: bool = False, wait: bool = True,
                       progress: bool = True) -> list[dict] | None:
    """Run the scans of ``todo`` as a job array; their QC records, or None when not waiting.

    Parameters
    ----------
    todo : list of (ScanSource, digest)
        Scans to (re)compute; element names are the scan ids.
    config : RawConfig
        Settings (pickled into each element).
    out : PreprocessDir
        Output folder; the array lives in ``out.jobs``.
    executor : {"local", "slurm"}
        submitit's local executor or a SLURM job array.
    resources : sapkit.jobs.executors.Resources, optional
        Per-element resources and array parallelism.
    resume : bool
        Resubmit only elements that failed or never ran, or whose record is stale (other digest).
    wait : bool
        False (SLURM): return None right after submitting.
    progress : bool
        Progress bar over finished elements.
    """
    out.path.mkdir(parents=True, exist_ok=True)
    root = str(out.path.resolve())
    elements = {source.scan_id: (scan_element, (source, config, root, digest)) for source, digest in todo}
    stale = [source.scan_id for source, digest in todo if _finished_record(out, source, digest) is None] if resume else []
    states = run_array(elements, out.jobs, executor=executor, resources=resources, resume=resume, wait=wait,
                       name="sapkit-preprocess", progress=progress, redo=stale)
    if not wait and executor == "slurm":
        return None
    by_name = states.set_index("name")
    records = []
    for source, digest in todo:
        row = by_name.loc[source.scan_id]
        record = _finished_record(out, source, digest) if row["state"] == "done" else None
        if record is not None:
            records.append(record)
        else:
            error = row["error"] or f"job ended in state {row['state']} without a record (log: {row['stderr']})"
            records.append(_failed_record(source, str(error)))
    return records

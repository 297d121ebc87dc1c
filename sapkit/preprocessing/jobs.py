"""``sapkit preprocess --executor local|slurm``: one submitit job-array element per scan.

Each element runs :func:`sapkit.preprocessing.scan_job.run_scan` for one scan on a cluster node (or
as a submitit local job) and writes the scan folder exactly as the in-process path does; the
submitter reads every finished scan's ``qc.json`` back. A scan that fails marks its element
``failed`` (its error in ``OUT/jobs/preprocess/states.csv`` and ``qc/scans.csv``), so ``--resume``
resubmits only failed or never-run scans. With ``--no-wait`` (SLURM) nothing is aggregated:
rerun the same command without ``--executor`` when the jobs are done — finished scans are reused
(same inputs and settings) and the manifest is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sapkit.config import RawConfig
from sapkit.errors import SapkitError
from sapkit.jobs.executors import Resources, run_array
from sapkit.io.folders import PreprocessDir
from sapkit.preprocessing.scan_job import run_scan
from sapkit.preprocessing.stations import ScanSource

__all__ = ["scan_element", "run_scans_as_array"]


def scan_element(source: ScanSource, config: RawConfig, out_dir: str, digest: str) -> str:
    """What one array element runs: preprocess one scan; raise when it failed (so the state says so).

    Returns the scan's ``qc.json`` path (relative paths are resolved on the submitting side).
    """
    record = run_scan(source, config, out_dir, digest)
    if record["status"] != "ok":
        raise SapkitError(record["summary"].get("error") or "failed")
    return str(PreprocessDir(out_dir).scan_qc_json(source.scan_id))


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
        Resubmit only elements that failed or never ran.
    wait : bool
        False (SLURM): return None right after submitting.
    progress : bool
        Progress bar over finished elements.
    """
    out.path.mkdir(parents=True, exist_ok=True)
    root = str(out.path.resolve())
    elements = {source.scan_id: (scan_element, (source, config, root, digest)) for source, digest in todo}
    states = run_array(elements, out.jobs, executor=executor, resources=resources, resume=resume, wait=wait,
                       name="sapkit-preprocess", progress=progress)
    if not wait and executor == "slurm":
        return None
    by_name = states.set_index("name")
    records = []
    for source, _ in todo:
        row = by_name.loc[source.scan_id]
        qc = out.scan_qc_json(source.scan_id)
        if row["state"] == "done" and qc.is_file():
            records.append(json.loads(Path(qc).read_text()))
        else:
            error = row["error"] or f"job ended in state {row['state']} (log: {row['stderr']})"
            records.append(_failed_record(source, str(error)))
    return records

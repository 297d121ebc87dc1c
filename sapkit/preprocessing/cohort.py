"""``sapkit preprocess``: a DICOM folder or a stations CSV → a kit manifest, QC tables and figures.

Scans are found (:mod:`sapkit.preprocessing.dicom` or :mod:`sapkit.preprocessing.stations`), each
is preprocessed (:func:`sapkit.preprocessing.pipeline.preprocess_scan`) in this process or in
``jobs`` local worker processes, and written atomically into its own folder (staged, then renamed).
A scan that fails is listed with its error in ``qc/scans.csv`` and the others finish. A scan whose
inputs and settings are unchanged since its last successful run is reused, not recomputed
(``force`` recomputes). Nyúl standardisation, when enabled, is learned across the finished scans
and applied last. ``qc/scans.csv`` has a row per scan: its status (``ok``, ``reused``, ``failed``, a
defective acquisition's ``incomplete`` / ``inconsistent`` / ``warned``; ``raw.on_incomplete``), the
``acquisition`` defects with station and range (mm), the grid and its rule, and the lesion volume
kept (``lesion_ml`` on the output grid, ``lesion_ml_source`` in a whole-body lesion label or the
synthetic truth, ``lesion_kept`` their ratio) and, when a scan of the cohort has Dixon images, ``dixon``
(the classes carried, or why one was left out). The manifest (``manifest.yaml`` + ``manifest.csv``, written with
:func:`sapkit.data.manifest.write_manifest`) lists the successful scans. The input is only read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sapkit.config import RawConfig, check_raw_config
from sapkit.data.manifest import write_manifest
from sapkit.errors import SapkitError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.nifti import read_image, read_label, save_nifti
from sapkit.jobs.executors import Resources
from sapkit.jobs.progress import progress_bar
from sapkit.jobs.threads import shared_cores
from sapkit.label_maps import FINE_ATLAS
from sapkit.io.output_paths import OutputPlan
from sapkit.io.folders import PreprocessDir
from sapkit.preprocessing.dicom import scan_dicom_tree
from sapkit.preprocessing.dixon import DIXON_COLUMNS
from sapkit.preprocessing.jobs import run_scans_as_array
from sapkit.preprocessing.nyul import apply_standard_scale, fit_standard_scale
from sapkit.preprocessing.qc import write_summary_html
from sapkit.preprocessing.rules import load_rules
from sapkit.preprocessing.scan_job import reusable_record, run_scan, scan_digest
from sapkit.preprocessing.stations import ScanSource, attach_labels, load_labels_csv, load_stations_csv

__all__ = ["PreprocessResult", "SCAN_COLUMNS", "discover_scans", "declare_outputs", "preprocess"]

SCAN_COLUMNS = ("scan_id", "subject_id", "site", "cohort", "status", "error", "acquisition", "n_t1_stations",
                "n_dwi_stations", "b_values", "shape", "spacing_mm", "grid_rule", "dwi_body_coverage", "max_shift_mm",
                "lesion_ml", "lesion_ml_source", "lesion_kept", "seconds", "warnings")


@dataclass(frozen=True)
class PreprocessResult:
    """What ``sapkit preprocess`` produced: the manifest (None when no scan succeeded) and QC tables."""

    out_dir: Path
    manifest: Path | None
    scans: pd.DataFrame
    stations: pd.DataFrame
    series: pd.DataFrame | None

    def __repr__(self) -> str:
        counts = self.scans["status"].value_counts().to_dict() if len(self.scans) else {}
        return f"PreprocessResult({self.out_dir}; scans: {counts}; manifest: {self.manifest})"


def discover_scans(input_path: str | Path, config: RawConfig, *, labels: str | Path | None = None,
                   rules: str | Path | None = None, progress: bool = False
                   ) -> tuple[list[ScanSource], pd.DataFrame | None, pd.DataFrame | None, str]:
    """Find the scans of a DICOM folder or a stations CSV.

    Returns
    -------
    scans : list of ScanSource
    series, skipped : DataFrame or None
        DICOM only: one row per series (classification, reason) and the files not used.
    rules_text : str
        The classification rules used ("" for a stations CSV), part of each scan's digest.

    Raises
    ------
    SapkitError
        ``input_path`` is neither a folder nor a ``.csv`` file; bad stations/labels CSV or rules.
    """
    path = Path(input_path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_stations_csv(path), None, None, ""
    if not path.is_dir():
        raise SapkitError(f"input {path} is neither a DICOM folder nor a stations CSV (.csv); pass one of them")
    loaded = load_rules(rules or config.rules or None)
    inventory = scan_dicom_tree(path, loaded, progress=progress)
    scans = inventory.scans
    label_file = labels or config.labels
    if label_file:
        table = load_labels_csv(label_file)
        scans = [attach_labels(s, table) for s in scans]
    return scans, inventory.series, inventory.skipped, Path(loaded.source).read_text()


def _run_all(todo: list[tuple[ScanSource, str]], config: RawConfig, out: PreprocessDir, jobs: int,
             progress: bool) -> list[dict]:
    results: list[dict] = []
    bar = progress_bar(total=len(todo), desc="preprocess scans", unit="scan", disable=not progress)
    if jobs <= 1 or len(todo) <= 1:
        for source, digest in todo:
            results.append(run_scan(source, config, out.path, digest))
            bar.update()
        bar.close()
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    with shared_cores(min(jobs, len(todo))), \
            ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_scan, s, config, out.path, d): s for s, d in todo}
        for future in as_completed(futures):
            source = futures[future]
            try:
                results.append(future.result())
            except BrokenProcessPool as exc:
                results.append({"status": "failed", "stations": [], "files": {}, "summary": {
                    "scan_id": source.scan_id, "subject_id": source.subject_id, "site": source.site,
                    "cohort": source.cohort, "status": "failed", "error": f"worker process died ({exc})"}})
            bar.update()
    bar.close()
    return results


def _scan_row(record: dict, columns: tuple[str, ...] = SCAN_COLUMNS) -> dict:
    s = record["summary"]
    row = {c: s.get(c, "") for c in columns}
    row["status"] = "reused" if record.get("reused") and s.get("status") == "ok" else s.get("status")
    row["seconds"] = s.get("seconds_total", "")
    row["warnings"] = "; ".join(s.get("warnings", []))
    return row


def _lesion_kept(table: pd.DataFrame, input_path: Path) -> pd.DataFrame:
    """Fill ``lesion_ml_source`` from the truth of a synthetic raw cohort (``raw_config.json`` and
    ``truth/<scan_id>_lesion.nii.gz`` beside the DICOM folder or stations CSV), then ``lesion_kept``
    = ``lesion_ml`` / ``lesion_ml_source`` (1 = every lesion voxel of the source is on the output grid)."""
    root = input_path.parent
    table = table.copy()
    for col in ("lesion_ml", "lesion_ml_source"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    if (root / "raw_config.json").is_file():
        for i, scan_id in table["scan_id"].items():
            truth = root / "truth" / f"{scan_id}_lesion.nii.gz"
            if truth.is_file():
                data, affine, _ = read_label(truth, what="synthetic lesion truth")
                table.loc[i, "lesion_ml_source"] = np.count_nonzero(data) * abs(np.linalg.det(affine[:3, :3])) / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = (table["lesion_ml"] / table["lesion_ml_source"]).where(table["lesion_ml_source"] > 0)
    table["lesion_kept"] = kept.round(4)
    return table


def declare_outputs(plan: OutputPlan, input_path: str | Path, out_dir: str | Path, *, labels: str | Path | None = None,
                    rules: str | Path | None = None, flag: str = "--out") -> None:
    """Declare what :func:`preprocess` reads (the input tree or stations CSV, labels, rules) and writes.

    The input folder (the DICOM tree, or the stations CSV's folder) is read as a whole: the output
    folder may not lie inside it.
    """
    input_path = Path(input_path)
    if input_path.is_dir():
        plan.reads_folder(input_path, "folder", whole=True)
    elif input_path.is_file():  # (neither: preprocess says what is wrong with the input)
        plan.reads(input_path, "the stations CSV")
        plan.reads_folder(input_path.parent, "folder of the stations CSV", whole=True)
    plan.reads(labels, "the labels CSV")
    plan.reads(rules, "the rules file")
    out = PreprocessDir(out_dir)
    plan.writes_folder(out.path, flag)
    for path in (out.manifest_yaml, out.manifest_csv, out.table("scans"), out.nyul_json):
        plan.writes(path, flag, folder=out.path)


def _series_summary(series: pd.DataFrame | None, limit: int = 12) -> str:
    """How each DICOM series was classified, for the error that nothing usable was found (nothing is written then)."""
    if series is None or not len(series):
        return ""
    lines = [f"  {r.scan_id}: series {r.series_number} '{r.description or '(no description)'}' -> {r.sequence} ({r.reason})"
             for r in series.head(limit).itertuples()]
    more = f"\n  … and {len(series) - limit} more series" if len(series) > limit else ""
    return ("; each scan needs a T1 and a DWI series. How the series were classified:\n" + "\n".join(lines) + more
            + "\nIf a T1 or DWI series is listed as unknown or ignore, copy the packaged rules.yaml, add a rule "
              "for its name or ImageType and pass --rules FILE.")


def preprocess(input_path: str | Path, out_dir: str | Path, config: RawConfig | None = None, *,
               jobs: int | None = None, labels: str | Path | None = None, rules: str | Path | None = None,
               force: bool = False, progress: bool = True, executor: str | None = None, resources: Resources | None = None,
               resume: bool = False, wait: bool = True) -> PreprocessResult | None:
    """Preprocess every scan of a DICOM folder or stations CSV into a kit data folder.

    Parameters
    ----------
    input_path : path
        A DICOM folder (any nesting) or a stations CSV (per-station NIfTI form). Never written to.
    out_dir : path
        Output folder (:class:`~sapkit.io.folders.PreprocessDir`); must not lie inside the input.
    config : RawConfig, optional
        Settings (profile section ``raw``; default :class:`RawConfig`).
    jobs : int, optional
        Local worker processes (default ``config.jobs``).
    labels : path, optional
        Labels CSV for DICOM input (``scan_id, station, skeleton_label, lesion_label, fine_label``).
    rules : path, optional
        Classification rules YAML (default ``config.rules`` or the packaged ``rules.yaml``).
    force : bool
        Recompute scans whose outputs are up to date.
    progress : bool
        tqdm progress bars.
    executor : {"local", "slurm"}, optional
        One submitit job-array element per scan instead of ``jobs`` local processes
        (:mod:`sapkit.preprocessing.jobs`; logs and states in ``OUT/jobs/preprocess``).
    resources : sapkit.jobs.executors.Resources, optional
        With ``executor``: per-scan resources and array parallelism.
    resume, wait : bool
        With ``executor``: resubmit only failed / never-run scans; ``wait=False`` (SLURM) returns
        None after submitting (rerun without ``executor`` when the jobs are done to write the manifest).

    Returns
    -------
    PreprocessResult or None

    Raises
    ------
    SapkitError
        Bad input path, output inside the input, invalid CSV/rules/settings, or no scan found.
    """
    config = check_raw_config(config or RawConfig())
    jobs = int(jobs or config.jobs)
    input_path, out = Path(input_path), PreprocessDir(Path(out_dir))
    if not input_path.is_dir() and not (input_path.is_file() and input_path.suffix.lower() == ".csv"):
        raise SapkitError(f"input {input_path} is neither a DICOM folder nor a stations CSV (.csv); pass one of them")
    plan = OutputPlan("preprocess")
    declare_outputs(plan, input_path, out.path, labels=labels, rules=rules, flag="output folder")
    plan.check()
    scans, series, skipped, rules_text = discover_scans(input_path, config, labels=labels, rules=rules, progress=progress)
    if not scans:
        raise SapkitError(f"no scan with T1 and DWI series found in {input_path}" + _series_summary(series))
    out.qc_dir.mkdir(parents=True, exist_ok=True)
    if series is not None:
        atomic_write_text(out.table("series"), series.to_csv(index=False))
        atomic_write_text(out.table("skipped_files"), skipped.to_csv(index=False))
    digests = {s.scan_id: scan_digest(s, config, rules_text) for s in scans}
    records, todo = {}, []
    for source in scans:
        reused = None if force else reusable_record(source, out, digests[source.scan_id])
        if reused is not None:
            records[source.scan_id] = {**reused, "reused": True}
        else:
            todo.append((source, digests[source.scan_id]))
    if executor is not None:
        done = run_scans_as_array(todo, config, out, executor=executor, resources=resources, resume=resume,
                                  wait=wait, progress=progress)
        if done is None:
            return None
    else:
        done = _run_all(todo, config, out, jobs, progress)
    for record in done:
        records[record["summary"]["scan_id"]] = record
    if config.nyul.enabled:
        records = standardise_cohort(records, scans, config, out.path, digests)
    ordered = [records[s.scan_id] for s in scans]
    columns = SCAN_COLUMNS + (("dixon",) if any("dixon" in r["summary"] for r in ordered) else ())  # Dixon in the cohort
    scan_table = _lesion_kept(pd.DataFrame([_scan_row(r, columns) for r in ordered], columns=list(columns)), input_path)
    stations = pd.DataFrame([row for r in ordered for row in r.get("stations", [])])
    atomic_write_text(out.table("scans"), scan_table.to_csv(index=False))
    atomic_write_text(out.table("stations"), stations.to_csv(index=False))
    manifest = _write_manifest(ordered, scans, out, input_path, config)
    write_summary_html(out.summary_html, stations, scan_table)
    return PreprocessResult(out.path, manifest, scan_table, stations, series)


def _write_manifest(records: list[dict], scans: list[ScanSource], out: PreprocessDir, input_path: Path,
                    config: RawConfig) -> Path | None:
    rows = []
    for record, source in zip(records, scans):
        if record.get("status") != "ok":
            continue
        files = record["files"]
        cohort = source.cohort or ("patient" if "lesion_label" in files else "healthy")
        rows.append({"scan_id": source.scan_id, "subject_id": source.subject_id, "site": source.site, "cohort": cohort,
                     "t1": files["t1"], "b1000": files["b1000"], "skeleton_label": files.get("skeleton_label", ""),
                     "lesion_label": files.get("lesion_label", ""), **({"fine_label": files.get("fine_label", "")}
                                                                      if any("fine_label" in r.get("files", {}) for r in records) else {}),
                     **({"adc": files.get("adc", "")} if config.write_adc else {}),
                     **{c: files.get(c, "") for c in DIXON_COLUMNS.values() if any(c in r.get("files", {}) for r in records)}})
    if not rows:
        return None
    steps = ", ".join(name for name, on in (("ADC", config.write_adc), ("N4", config.n4.enabled),
                                           ("station standardisation", config.standardise.enabled), ("stitching", True),
                                           (f"DWI→T1 {config.register.transform} registration", config.register.enabled),
                                           ("Nyúl", config.nyul.enabled)) if on)
    kind = "stations CSV" if input_path.suffix.lower() == ".csv" else "DICOM folder"
    return write_manifest(out.path, pd.DataFrame(rows), name=f"sapkit-preprocess-{input_path.stem or input_path.name}",
                          description=f"{len(rows)} scans preprocessed by sapkit preprocess from the {kind} {input_path.name} "
                                      f"({steps}); T1 and b1000 on the stitched T1 grid",
                          licence="unknown", source=str(input_path.resolve()),
                          label_maps={"fine": dict(FINE_ATLAS)} if any("fine_label" in r for r in rows) else None)


def standardise_cohort(records: dict, scans: Sequence[ScanSource], config: RawConfig, out_dir: str | Path,
                       digests: dict[str, str]) -> dict:
    """Learn the standard scale on the finished scans of the fit cohort and apply it to every scan.

    ``records`` are the per-scan QC records of :func:`sapkit.preprocessing.scan_job.run_scan` (with
    the native ``landmarks`` of T1 and b1000); each scan's ``t1``/``b1000`` files are rewritten
    (atomically) and its ``qc.json`` records the digest of the standard applied. A scan already
    standardised with another standard is first recomputed from its inputs. The standard goes to
    ``qc/nyul.json``. Returns the updated records.
    """
    out = PreprocessDir(out_dir)
    by_id = {s.scan_id: s for s in scans}
    ok = {k: r for k, r in records.items() if r.get("status") == "ok" and "landmarks" in r}
    fit = [r for r in ok.values() if config.nyul.fit_on == "all" or r["summary"].get("cohort") == "healthy"]
    if not fit:
        atomic_write_text(out.nyul_json, json.dumps({"applied": False, "reason": f"no finished scan in the fit cohort "
                                                     f"'{config.nyul.fit_on}'; set raw.nyul.fit_on=all"}, indent=1))
        return records
    standard = {ch: fit_standard_scale([r["landmarks"][ch] for r in fit], scale=config.nyul.scale).tolist()
                for ch in ("t1", "b1000")}
    digest = hashlib.sha256(json.dumps(standard).encode()).hexdigest()[:16]
    for scan_id, record in ok.items():
        if record.get("nyul_digest") == digest:
            continue
        if record.get("nyul_digest") is not None:  # standardised with an older standard: start from the inputs again
            record = run_scan(by_id[scan_id], config, out.path, digests[scan_id])
            if record.get("status") != "ok":
                records[scan_id] = record
                continue
        for ch in ("t1", "b1000"):
            path = out.path / record["files"][ch]
            image, affine, header = read_image(path, what=ch)
            save_nifti(apply_standard_scale(image, record["landmarks"][ch], standard[ch]), affine, path, header=header,
                       dtype=np.float32)
        record = {**record, "nyul_digest": digest}
        atomic_write_text(out.scan_qc_json(scan_id), json.dumps({k: v for k, v in record.items() if k != "reused"},
                                                                 indent=1, default=str))
        records[scan_id] = {**record, "reused": records[scan_id].get("reused", False)}
    atomic_write_text(out.nyul_json, json.dumps({"applied": True, "digest": digest, "fit_on": config.nyul.fit_on,
                                                 "percentiles": list(config.nyul.percentiles), "standard": standard,
                                                 "fit_scans": sorted(r["summary"]["scan_id"] for r in fit)}, indent=1))
    return records

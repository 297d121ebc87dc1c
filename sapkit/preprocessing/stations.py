"""What one scan is made of before preprocessing: its stations and labels, from either input form.

A *station* is one acquisition block of one sequence (T1, or DWI with one or more b-values on one
grid); a *scan* is one whole-body examination of one subject (4–6 T1 stations + as many DWI
stations). :class:`ScanSource` describes a scan by file names only, so it is cheap to send to a
worker process; :func:`load_stations_csv` builds them from the per-station NIfTI form, and
:mod:`sapkit.preprocessing.dicom` from a DICOM tree.

The stations CSV has one row per station image: ``subject_id, sequence (t1|dwi|water|fat), b_value
(s/mm², dwi only), station, path`` (paths relative to the CSV); optional ``scan_id`` (default
``<subject_id>_s0``), ``site``, ``cohort`` (healthy|patient; default patient when a lesion label
is given), and label columns ``skeleton_label``, ``lesion_label``, ``fine_label`` on T1 rows: the
same file on every T1 row of a scan is a whole-body label on the T1 grid (resampled by world
position), different files are per-station labels on each station's grid. ``water`` and ``fat`` rows
are Dixon water and fat images, one per T1 station on that station's grid (any station numbers:
they are paired with the T1 stations by grid, :mod:`sapkit.preprocessing.dixon`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sapkit.errors import ManifestError
from sapkit.io.output_paths import file_stem_problem

__all__ = ["LABEL_COLUMNS", "STATION_COLUMNS", "STATION_SEQUENCES", "StationSource", "ScanSource", "load_stations_csv",
           "load_labels_csv", "attach_labels"]

LABEL_COLUMNS = ("skeleton_label", "lesion_label", "fine_label")
STATION_COLUMNS = ("subject_id", "sequence", "b_value", "station", "path")
#: Sequences a station may hold: the kit's two channels and the Dixon water and fat images.
STATION_SEQUENCES = ("t1", "dwi", "water", "fat")


@dataclass(frozen=True)
class StationSource:
    """One station of one sequence, by file names.

    Attributes
    ----------
    sequence : str
        One of :data:`STATION_SEQUENCES` (``t1``, ``dwi``, Dixon ``water`` or ``fat``).
    station : int
        Station number (1 = head end for DICOM; the CSV's number for NIfTI).
    images : tuple of (b-value, files)
        b-value in s/mm² (None for T1) and the files holding it: one NIfTI path, or DICOM slices (an
        Enhanced file as a :class:`~sapkit.preprocessing.enhanced.FrameFile` naming the frames of this image).
    kind : str
        ``nifti`` or ``dicom``.
    description : str
        Where it came from (file or series description), for QC.
    labels : tuple of (name, path)
        Per-station label maps on this station's grid (T1 stations only).
    """

    sequence: str
    station: int
    images: tuple[tuple[float | None, tuple[str, ...]], ...]
    kind: str
    description: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScanSource:
    """One scan to preprocess: identity, stations, whole-body labels and problems found while sorting.

    ``labels`` are whole-body label maps (name, path) on the T1 grid; ``problems`` non-empty means
    the scan cannot be processed (each names the file and the fix; the scan fails in the QC table).
    """

    scan_id: str
    subject_id: str
    site: str
    cohort: str
    stations: tuple[StationSource, ...]
    labels: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()
    origin: str = ""

    def __repr__(self) -> str:
        n_t1 = sum(s.sequence == "t1" for s in self.stations)
        n_dwi = sum(s.sequence == "dwi" for s in self.stations)
        bs = sorted({b for s in self.stations for b, _ in s.images if b is not None})
        labels = sorted({n for n, _ in self.labels} | {n for s in self.stations for n, _ in s.labels})
        return (f"ScanSource({self.scan_id}; subject: {self.subject_id}; {n_t1} T1 + {n_dwi} DWI stations; "
                f"b-values: {bs}; labels: {labels}; problems: {len(self.problems)})")


def _b_value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _check_columns(table: pd.DataFrame, path: Path) -> list[str]:
    problems = []
    missing = [c for c in STATION_COLUMNS if c not in table.columns]
    if missing:
        return [f"missing column(s) {missing}; the stations CSV needs {list(STATION_COLUMNS)}"]
    for i, row in table.iterrows():
        where = f"row {i + 2}"
        if not row["subject_id"]:
            problems.append(f"{where}: empty subject_id; fill it")
        for col in ("scan_id", "subject_id"):
            why = file_stem_problem(row[col]) if row.get(col, "") else None
            if why:
                problems.append(f"{where}: {col} {row[col]!r} {why}; ids become folder and file names (scans/<scan_id>/) "
                                "— use letters, digits, '_', '-' and '.' (not first)")
        if row["sequence"] not in STATION_SEQUENCES:
            problems.append(f"{where}: sequence '{row['sequence']}' must be t1, dwi, water or fat (Dixon)")
        if row["sequence"] == "dwi" and _b_value(row["b_value"]) is None:
            problems.append(f"{where}: dwi row needs a b_value (s/mm², e.g. 1000), got '{row['b_value']}'")
        if row["sequence"] != "dwi" and row["b_value"]:
            problems.append(f"{where}: {row['sequence']} row has b_value '{row['b_value']}'; leave it empty")
        if not row["station"].isdigit() or int(row["station"]) < 1:
            problems.append(f"{where}: station '{row['station']}' must be a whole number ≥ 1")
        if not row["path"]:
            problems.append(f"{where}: empty path; name the station's NIfTI file (relative to {path.parent})")
        if row.get("cohort", "") not in ("", "healthy", "patient"):
            problems.append(f"{where}: cohort '{row['cohort']}' must be healthy, patient or empty")
    return problems


def _labels_of(t1: pd.DataFrame, base: Path) -> tuple[tuple[tuple[str, str], ...], dict[int, list[tuple[str, str]]]]:
    """Whole-scan labels and per-station labels (by row index) from the label columns of T1 rows."""
    whole, per_station = [], {}
    for column in LABEL_COLUMNS:
        if column not in t1.columns:
            continue
        values = [v for v in t1[column] if v]
        if not values:
            continue
        if len(set(values)) == 1 and len(values) == len(t1) and len(t1) > 1:
            whole.append((column, str(base / values[0])))
            continue
        for idx, value in t1[column].items():
            if value:
                per_station.setdefault(idx, []).append((column, str(base / value)))
    return tuple(whole), per_station


def _scan_problems(scan_id: str, rows: pd.DataFrame, base: Path) -> list[str]:
    problems = []
    for seq in ("t1", "dwi"):
        if not (rows["sequence"] == seq).any():
            problems.append(f"scan {scan_id} has no {seq} station in the stations CSV; add its rows")
    dup = rows.duplicated(["sequence", "b_value", "station"], keep=False)
    for _, row in rows[dup].iterrows():
        problems.append(f"scan {scan_id}: {row['sequence']} b={row['b_value'] or '-'} station {row['station']} "
                        "is listed twice; keep one row per station image")
    for col in ("path",) + tuple(c for c in LABEL_COLUMNS if c in rows.columns):
        for value in rows[col]:
            if value and not (base / value).is_file():
                problems.append(f"scan {scan_id}: {col} file {base / value} does not exist; fix the path "
                                "(relative to the stations CSV)")
    labelled_other = rows[(rows["sequence"] != "t1") & rows[[c for c in LABEL_COLUMNS if c in rows.columns]].ne("").any(axis=1)] \
        if any(c in rows.columns for c in LABEL_COLUMNS) else rows.iloc[:0]
    if len(labelled_other):
        problems.append(f"scan {scan_id}: label files on {'/'.join(sorted(set(labelled_other['sequence'])))} rows; "
                        "labels belong on the T1 rows (T1 grid)")
    return problems


def load_stations_csv(path: str | Path) -> list[ScanSource]:
    """Read a stations CSV (per-station NIfTI form) into one :class:`ScanSource` per scan.

    Table-level problems (columns, sequence names, b-values, station numbers) raise; problems of
    one scan (missing file, no DWI station, duplicate station) are recorded in its ``problems``
    so the other scans still run.

    Raises
    ------
    ManifestError
        Unreadable CSV or invalid rows, listing every problem (row and fix).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"stations CSV {path} does not exist; pass the CSV listing the station files")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"stations CSV {path} is not a readable CSV ({exc}); fix the file") from None
    table = table.apply(lambda c: c.str.strip())
    if "sequence" in table.columns:
        table["sequence"] = table["sequence"].str.lower()
    problems = _check_columns(table, path)
    if problems:
        raise ManifestError("\n".join([f"stations CSV {path} has {len(problems)} problem(s):"] + [f"  - {p}" for p in problems]))
    if "scan_id" not in table.columns:
        table["scan_id"] = ""
    table["scan_id"] = [s or f"{sub}_s0" for s, sub in zip(table["scan_id"], table["subject_id"])]
    base = path.parent
    scans = []
    for scan_id, rows in table.groupby("scan_id", sort=True):
        t1 = rows[rows["sequence"] == "t1"]
        whole, per_station = _labels_of(t1, base)
        stations = [StationSource("t1", int(r["station"]), ((None, (str(base / r["path"]),)),), "nifti", r["path"],
                                  tuple(per_station.get(i, ()))) for i, r in t1.iterrows()]
        dwi = rows[rows["sequence"] == "dwi"]
        for number, group in dwi.groupby(dwi["station"].astype(int)):
            images = tuple((_b_value(r["b_value"]), (str(base / r["path"]),)) for _, r in group.iterrows())
            stations.append(StationSource("dwi", int(number), images, "nifti", ", ".join(group["path"])))
        stations += [StationSource(r["sequence"], int(r["station"]), ((None, (str(base / r["path"]),)),), "nifti", r["path"])
                     for _, r in rows[rows["sequence"].isin(("water", "fat"))].iterrows()]
        first = rows.iloc[0]
        has_lesion = any(n == "lesion_label" for n, _ in whole) or any(n == "lesion_label" for v in per_station.values() for n, _ in v)
        cohort = first.get("cohort", "") or ("patient" if has_lesion else "healthy")
        scans.append(ScanSource(str(scan_id), first["subject_id"], first.get("site", "") or "unknown", cohort,
                                tuple(stations), whole, tuple(_scan_problems(str(scan_id), rows, base)), str(path)))
    return scans


def load_labels_csv(path: str | Path) -> pd.DataFrame:
    """Read a labels CSV for DICOM input: ``scan_id``, optional ``station``, label columns.

    Paths are made absolute (relative to the CSV). An empty ``station`` means a whole-body label on
    the T1 grid; a number is the T1 station counted from the head (1 = head end).

    Raises
    ------
    ManifestError
        Missing file or columns, bad station numbers, missing label files.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"labels CSV {path} does not exist; pass a CSV with scan_id, station, skeleton_label, lesion_label")
    table = pd.read_csv(path, dtype=str, keep_default_na=False).apply(lambda c: c.str.strip())
    columns = [c for c in LABEL_COLUMNS if c in table.columns]
    problems = [] if "scan_id" in table.columns and columns else \
        [f"needs a scan_id column and at least one of {list(LABEL_COLUMNS)}"]
    if "station" not in table.columns:
        table["station"] = ""
    for i, row in table.iterrows() if not problems else []:
        if row["station"] and not row["station"].isdigit():
            problems.append(f"row {i + 2}: station '{row['station']}' must be empty (whole body) or a number ≥ 1")
        for col in columns:
            if row[col] and not (path.parent / row[col]).is_file():
                problems.append(f"row {i + 2}: {col} file {path.parent / row[col]} does not exist; fix the path")
    if problems:
        raise ManifestError("\n".join([f"labels CSV {path} has {len(problems)} problem(s):"] + [f"  - {p}" for p in problems]))
    for col in columns:
        table[col] = [str(path.parent / v) if v else "" for v in table[col]]
    return table


def attach_labels(scan: ScanSource, labels: pd.DataFrame) -> ScanSource:
    """A copy of ``scan`` with the labels of its ``scan_id`` from a :func:`load_labels_csv` table.

    Station numbers count T1 stations from the head end (1); the cohort becomes ``patient`` when
    a lesion label is attached and no cohort was set.
    """
    rows = labels[labels["scan_id"] == scan.scan_id]
    if rows.empty:
        return scan
    columns = [c for c in LABEL_COLUMNS if c in rows.columns]
    whole = list(scan.labels)
    by_station: dict[int, list[tuple[str, str]]] = {}
    for _, row in rows.iterrows():
        pairs = [(c, row[c]) for c in columns if row[c]]
        if row["station"]:
            by_station.setdefault(int(row["station"]), []).extend(pairs)
        else:
            whole.extend(pairs)
    problems = list(scan.problems)
    t1_numbers = {s.station for s in scan.stations if s.sequence == "t1"}
    for number in sorted(set(by_station) - t1_numbers):
        problems.append(f"scan {scan.scan_id}: labels CSV names T1 station {number}, but the scan has T1 stations "
                        f"{sorted(t1_numbers)} (1 = head end); fix the station number")
    stations = tuple(StationSource(s.sequence, s.station, s.images, s.kind, s.description,
                                   s.labels + tuple(by_station.get(s.station, ()))) if s.sequence == "t1" else s
                     for s in scan.stations)
    has_lesion = any(n == "lesion_label" for n, _ in whole) or any(n == "lesion_label" for v in by_station.values() for n, _ in v)
    cohort = "patient" if has_lesion and scan.cohort in ("", "healthy") else scan.cohort
    return ScanSource(scan.scan_id, scan.subject_id, scan.site, cohort, stations, tuple(whole), tuple(problems), scan.origin)

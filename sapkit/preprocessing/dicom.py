"""Sort a DICOM tree (any nesting) into scans and stations from headers alone.

Every file under the root is opened with pydicom without pixel data. Files are grouped by
``SeriesInstanceUID``; each series is classified by the rules (:mod:`sapkit.preprocessing.rules`);
T1, DWI and Dixon water/fat series are cut into *stacks*: one b-value, one orientation and matrix, slices sorted
along the slice normal, split where slices repeat (several acquisitions in one series, told apart
by ``AcquisitionNumber``) or jump (several stations in one series). An Enhanced (multi-frame) file
is read frame by frame (position, orientation, b-value and image class from its functional groups,
:mod:`sapkit.preprocessing.enhanced`); a series whose frames carry several image classes (FrameType
value 4: an mDixon file's IN_PHASE, OUT_PHASE, WATER and FAT frames) is split into one sub-series per
class, each classified with its FrameType as ImageType and listed on its own row; the frames of one
b-value and class must form one stack, and its files carry that selection
(:class:`~sapkit.preprocessing.enhanced.FrameFile`) to the conversion. Stacks of one patient and study
form a scan ``<PatientID>_s<k>`` (k = study order by date/time); DWI stacks on one grid (the
b-values of one station) form one DWI station; stations are numbered from the head end (T1, water
and fat each on their own; :mod:`sapkit.preprocessing.dixon` pairs water/fat with T1 stations by grid).

Nothing is ever written into the tree. What cannot be used is listed with a reason: files that
are not DICOM (``skipped``), series of other modalities, ignored and unknown series and stacks
that are not volumes (``series`` table, column ``reason``).
"""

from __future__ import annotations

import os
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sapkit.jobs.progress import progress_bar
from sapkit.preprocessing.enhanced import (DIXON_FRAME_CLASSES, FUNCTIONAL_GROUP_TAGS, FrameFile, FrameSelector,
                                           frame_headers, is_enhanced)
from sapkit.preprocessing.rules import Rules
from sapkit.preprocessing.stations import ScanSource, StationSource

__all__ = ["DicomInventory", "SERIES_COLUMNS", "scan_dicom_tree", "safe_id"]

SERIES_COLUMNS = ("scan_id", "patient_id", "study_uid", "series_uid", "series_number", "description", "modality",
                  "image_type", "folder", "n_files", "b_values", "sequence", "n_stacks", "reason")
_TAGS = ["SOPClassUID", "SOPInstanceUID", "Modality", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime",
         "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "ProtocolName", "SequenceName", "ImageType",
         "InstanceNumber", "AcquisitionNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
         "Rows", "Columns", "NumberOfFrames", "InstitutionName", "Manufacturer"] + FUNCTIONAL_GROUP_TAGS
_DICOMDIR_UID = "1.2.840.10008.1.3.10"
_GAP_FACTOR = 1.5
_STACKED = ("t1", "dwi", "water", "fat")  # the sequences cut into stations (the rest is listed, not used)


@dataclass(frozen=True)
class DicomInventory:
    """What a DICOM tree holds.

    Attributes
    ----------
    root : Path
    series : DataFrame
        One row per series (:data:`SERIES_COLUMNS`): classification and, when unused, the reason.
    skipped : DataFrame
        ``path, reason``: files that are not usable DICOM images (not DICOM, DICOMDIR, no header).
    scans : list of ScanSource
        The scans found (T1 and DWI stacks of one patient and study).
    """

    root: Path
    series: pd.DataFrame
    skipped: pd.DataFrame
    scans: list[ScanSource]

    def __repr__(self) -> str:
        counts = self.series["sequence"].value_counts().to_dict() if len(self.series) else {}
        return (f"DicomInventory({self.root}; {len(self.series)} series {counts}; {len(self.skipped)} files skipped; "
                f"{len(self.scans)} scans)")


def safe_id(text: str) -> str:
    """A file-name-safe identifier (letters, digits, ``.``, ``_``, ``-``).

    Examples
    --------
    >>> safe_id("Doe^John 01")
    'Doe_John_01'
    """
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return out or "anonymous"


def _read_header(path: Path, tags: list):
    """The header of one file, or (None, reason)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags, force=True)
        except Exception as exc:  # noqa: BLE001 - any parser failure means "not DICOM"
            return None, f"not a DICOM file ({type(exc).__name__})"
        if "SOPInstanceUID" not in ds and "SeriesInstanceUID" not in ds:
            return None, "not a DICOM file (no DICM prefix and no DICOM identifiers)"
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt files
        return None, f"unreadable DICOM header ({type(exc).__name__}: {exc})"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR_UID:
        return None, "DICOMDIR index file (not an image)"
    if "SeriesInstanceUID" not in ds:
        return None, "no SeriesInstanceUID: cannot be grouped into a series"
    return ds, ""


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _int(value, default: int) -> int:
    """An integer attribute, or ``default`` when absent or malformed (real headers hold '1A')."""
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _slice_records(path: Path, ds, rules: Rules) -> list[dict]:
    """One record per slice: the file, or each frame of an Enhanced file (``frame`` = its index)."""
    if not is_enhanced(ds):
        return [_slice_record(path, ds, rules)]
    base = {"path": str(path), "rows": _int(ds.get("Rows"), 0), "columns": _int(ds.get("Columns"), 0), "frames": 1,
            "acquisition": "", "instance": _int(ds.get("InstanceNumber"), 0)}
    sop = str(ds.get("SOPInstanceUID", path.name))
    return [{**base, **frame, "sop": f"{sop}#{k}", "frame": k} for k, frame in enumerate(frame_headers(ds, rules))]


def _slice_record(path: Path, ds, rules: Rules) -> dict:
    b_value, b_source = rules.b_value(ds)
    return {"path": str(path), "sop": str(ds.get("SOPInstanceUID", path.name)),
            "position": _floats(ds.get("ImagePositionPatient"), 3),
            "orientation": _floats(ds.get("ImageOrientationPatient"), 6),
            "spacing": _floats(ds.get("PixelSpacing"), 2), "rows": _int(ds.get("Rows"), 0),
            "columns": _int(ds.get("Columns"), 0), "frames": _int(ds.get("NumberOfFrames"), 1),
            "acquisition": str(ds.get("AcquisitionNumber", "") or ""), "b_value": b_value, "b_source": b_source,
            "instance": _int(ds.get("InstanceNumber"), 0)}


def _split_stack(slices: list[dict]) -> tuple[list[list[dict]], str]:
    """Cut the slices of one b-value/geometry into stacks (sorted along the normal); reason if unusable."""
    if any(s["frames"] > 1 for s in slices):
        return [[s] for s in slices], ""
    if any(s["position"] is None or s["orientation"] is None for s in slices):
        return [], "slices without ImagePositionPatient/ImageOrientationPatient cannot be placed in space"
    o = np.asarray(slices[0]["orientation"])
    normal = np.cross(o[:3], o[3:])
    groups = defaultdict(list)
    for s in slices:
        groups[s["acquisition"]].append(s)
    positions = [round(float(np.dot(normal, s["position"])), 3) for s in slices]
    if len(set(positions)) == len(positions) or len(groups) == 1:
        groups = {"": slices}
    stacks = []
    for members in groups.values():
        members = sorted(members, key=lambda s: float(np.dot(normal, s["position"])))
        z = np.array([float(np.dot(normal, s["position"])) for s in members])
        steps = np.diff(z)
        if (steps < 1e-3).any():
            return [], "slices repeat at the same position (duplicates or mixed acquisitions); split the series"
        if len(members) < 2:
            return [], "a single slice is not a volume"
        cut = np.flatnonzero(steps > _GAP_FACTOR * np.median(steps)) + 1
        stacks += [list(part) for part in np.split(np.array(members, dtype=object), cut)]
    if any(len(s) < 2 for s in stacks):
        return [], "a stack of one slice is not a volume (irregular slice positions)"
    return stacks, ""


def _series_row(first, records: list[dict], root: Path) -> dict:
    texts = tuple(str(first.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
    bs = sorted({r["b_value"] for r in records if r["b_value"] is not None})
    return {"patient_id": str(first.get("PatientID", "") or ""), "study_uid": str(first.get("StudyInstanceUID", "")),
            "series_uid": str(first.get("SeriesInstanceUID", "")), "series_number": str(first.get("SeriesNumber", "") or ""),
            "description": texts[0] or texts[1], "modality": str(first.get("Modality", "") or ""),
            "image_type": "\\".join(str(w) for w in (first.get("ImageType") or [])),
            "folder": str(Path(os.path.relpath(Path(records[0]["path"]).parent, root))),
            "n_files": len({r["path"] for r in records}), "b_values": " ".join(f"{b:g}" for b in bs), "texts": texts}


def _stacks_of(records: list[dict], sequence: str) -> tuple[list[tuple[float | None, list[dict]]], str]:
    unique = list({r["sop"]: r for r in records}.values())  # a repeated SOPInstanceUID (frame) is one image
    keyed = defaultdict(list)
    for r in unique:
        key = (r["b_value"] if sequence == "dwi" else None, r["orientation"] and tuple(round(v, 4) for v in r["orientation"]),
               r["rows"], r["columns"], r["spacing"] and tuple(round(v, 4) for v in r["spacing"]))
        keyed[key].append(r)
    if sequence == "dwi" and any(k[0] is None for k in keyed):
        if any("frame" in r for r in unique):
            return [], ("Enhanced (multi-frame) diffusion file without DiffusionBValue in its per-frame "
                        "MRDiffusionSequence; export the series as classic single-frame DICOM, or convert it with dcm2niix")
        return [], "diffusion series without a b-value in the header; add its tag to b_value_tags in the rules file"
    out = []
    for key, members in sorted(keyed.items(), key=lambda kv: str(kv[0])):
        stacks, reason = _split_stack(members)
        if reason:
            return [], reason
        reason = _whole_files(members, stacks)
        if reason:
            return [], reason
        out += [(key[0], stack) for stack in stacks]
    return out, ""


def _whole_files(members: list[dict], stacks: list[list[dict]]) -> str:
    """A reason when the frames of one Enhanced file (at one b-value) fall into several stacks."""
    for path in {m["path"] for m in members if "frame" in m}:
        if sum(any(s["path"] == path for s in stack) for stack in stacks) > 1:
            return (f"Enhanced file {Path(path).name} holds several stacks (stations or repeats) at one b-value; "
                    "convert it with dcm2niix, or export one file per station")
    return ""


def _files(stack: list[dict], frames: FrameSelector = FrameSelector()) -> tuple[str, ...]:
    """The files of a stack in order (an Enhanced file once, however many of its frames it holds, as a
    :class:`FrameFile` naming the stack's frames when ``frames`` selects some)."""
    paths = dict.fromkeys(s["path"] for s in stack)
    enhanced = {s["path"] for s in stack if "frame" in s}
    return tuple(FrameFile(p, frames) if p in enhanced and frames != FrameSelector() else p for p in paths)


def _by_frame_class(records: list[dict]) -> list[tuple[str | None, list[dict]]]:
    """The records of a series per frame class (FrameType value 4) when its frames carry several Dixon
    classes (other classes then listed on their own); else [(None, all)], as before classes were read."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r.get("image_class", "")].append(r)
    return sorted(groups.items()) if len(set(groups) & set(DIXON_FRAME_CLASSES)) > 1 else [(None, records)]


def _classify(rules: Rules, row: dict, ds, image_class: str | None, records: list[dict]) -> tuple[str, str]:
    """Sequence and reason of a series, or of the frames of one class of a split series (unknown classes listed)."""
    image_type = tuple(str(w) for w in (ds.get("ImageType") or []))
    uniform = {r.get("image_class", "") for r in records}
    if image_class is not None:  # a split series: the class's FrameType stands for the ImageType
        image_type = records[0].get("frame_type") or (image_class,)
        row["image_type"] = "\\".join(image_type)
    elif len(uniform) == 1 and uniform <= set(DIXON_FRAME_CLASSES) and not uniform <= set(image_type):
        image_type += tuple(uniform)  # one Dixon class, named per frame only
    sequence, reason = rules.classify(modality=row["modality"], texts=row.pop("texts"), image_type=image_type,
                                      has_b_value=bool(row["b_values"]))
    if image_class is None:
        return sequence, reason
    if image_class not in DIXON_FRAME_CLASSES and sequence != "ignore":
        sequence, reason = "unknown", f"not one of the classes the kit sorts ({', '.join(DIXON_FRAME_CLASSES)}); listed, not used"
    return sequence, f"Enhanced frames of class {image_class or '(none)'}: {reason}"


def _station_geometry(stack: list[dict]) -> tuple:
    first = stack[0]
    if first["position"] is None:
        return (first["path"],)
    return (len(stack), tuple(round(v, 1) for v in first["position"]), tuple(round(v, 3) for v in first["orientation"]))


def _centre_z(stack: list[dict]) -> float:
    pos = [s["position"] for s in stack if s["position"] is not None]
    return float(np.mean([p[2] for p in pos])) if pos else float("nan")


def _build_scans(usable: list[dict]) -> list[ScanSource]:
    by_scan = defaultdict(list)
    for item in usable:
        by_scan[item["scan_id"]].append(item)
    scans = []
    for scan_id in sorted(by_scan):
        items = by_scan[scan_id]
        stations = []
        for sequence in ("t1", "water", "fat"):  # one image per station, numbered from the head end
            found = sorted([i for i in items if i["sequence"] == sequence], key=lambda i: -_centre_z(i["stack"]))
            stations += [StationSource(sequence, k + 1, ((None, _files(i["stack"], FrameSelector(None, i["image_class"]))),), "dicom",
                                       f"series {i['series_number']} {i['description']}") for k, i in enumerate(found)]
        dwi = defaultdict(list)
        for i in items:
            if i["sequence"] == "dwi":
                dwi[_station_geometry(i["stack"])].append(i)
        ordered = sorted(dwi.values(), key=lambda group: -_centre_z(group[0]["stack"]))
        for k, group in enumerate(ordered):
            images = tuple((i["b_value"], _files(i["stack"], FrameSelector(i["b_value"], i["image_class"])))
                           for i in sorted(group, key=lambda i: i["b_value"]))
            desc = "; ".join(sorted({f"series {i['series_number']} {i['description']}" for i in group}))
            stations.append(StationSource("dwi", k + 1, images, "dicom", desc))
        problems = [f"scan {scan_id} has no {seq} series; check rules.yaml (qc/series.csv lists every series and why)"
                    for seq in ("t1", "dwi") if not any(s.sequence == seq for s in stations)]
        first = items[0]
        scans.append(ScanSource(scan_id, first["subject_id"], first["site"], "healthy", tuple(stations), (),
                                tuple(problems), f"DICOM study {first['study_uid']}"))
    return scans


def scan_dicom_tree(root: str | Path, rules: Rules, *, progress: bool = False) -> DicomInventory:
    """Read every header under ``root`` and sort the tree into scans and stations.

    Parameters
    ----------
    root : path
        A folder holding DICOM files at any depth (file names and extensions do not matter).
    rules : Rules
        Classification rules and b-value tags (:func:`sapkit.preprocessing.rules.load_rules`).
    progress : bool
        tqdm progress bar over the files.

    Returns
    -------
    DicomInventory
    """
    with warnings.catch_warnings():  # real headers carry invalid values; pydicom warns per element
        warnings.simplefilter("ignore")
        return _scan(Path(root), rules, progress=progress)


def _scan(root: Path, rules: Rules, *, progress: bool) -> DicomInventory:
    root = Path(root)
    files = sorted(Path(d) / f for d, dirs, names in os.walk(root) for f in names if not f.startswith("."))
    tags = _TAGS + rules.tags_to_read()
    series, skipped, headers = defaultdict(list), [], {}
    for path in progress_bar(files, desc="DICOM headers", disable=not progress, unit="file"):
        ds, reason = _read_header(path, tags)
        try:
            found = _slice_records(path, ds, rules) if ds is not None else []
        except (TypeError, ValueError, AttributeError) as exc:
            ds, reason = None, f"malformed header ({type(exc).__name__}: {exc})"
        if ds is None:
            skipped.append({"path": str(path.relative_to(root)), "reason": reason})
            continue
        uid = str(ds.SeriesInstanceUID)
        series[uid].extend(found)
        headers.setdefault(uid, ds)
    studies: dict = defaultdict(dict)  # patient → study UID → earliest (date, time)
    for uid, ds in headers.items():
        when = (str(ds.get("StudyDate", "") or ""), str(ds.get("StudyTime", "") or ""))
        study = studies[safe_id(str(ds.get("PatientID", "") or ""))]
        key = str(ds.get("StudyInstanceUID", ""))
        study[key] = min(study.get(key, when), when)
    study_order = {(p, uid): k for p, items in studies.items()
                   for k, uid in enumerate(sorted(items, key=lambda u, items=items: (items[u], u)))}
    rows, usable = [], []
    for uid in sorted(series, key=lambda u: (str(headers[u].get("PatientID", "")), str(headers[u].get("SeriesNumber", "")), u)):
        ds = headers[uid]
        for image_class, records in _by_frame_class(series[uid]):
            row = _series_row(ds, records, root)
            patient = safe_id(row["patient_id"])
            row["scan_id"] = f"{patient}_s{study_order[(patient, row['study_uid'])]}"
            sequence, reason = _classify(rules, row, ds, image_class, records)
            stacks = []
            if sequence in _STACKED:
                stacks, problem = _stacks_of(records, sequence)
                if problem:
                    sequence, reason = "unusable", f"{reason}; {problem}"
            row.update(sequence=sequence, reason=reason, n_stacks=len(stacks))
            rows.append(row)
            site = str(ds.get("InstitutionName", "") or "") or "unknown"
            description = row["description"] + (f" [{image_class} frames]" if image_class else "")
            usable += [{"scan_id": row["scan_id"], "subject_id": patient, "site": safe_id(site), "study_uid": row["study_uid"],
                        "sequence": sequence, "b_value": b, "image_class": image_class, "stack": stack,
                        "series_number": row["series_number"], "description": description} for b, stack in stacks]
    table = pd.DataFrame(rows, columns=list(SERIES_COLUMNS))
    return DicomInventory(root, table, pd.DataFrame(skipped, columns=["path", "reason"]), _build_scans(usable))

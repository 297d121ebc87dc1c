"""Data manifests: one YAML of metadata naming one CSV with a row per scan.

``manifest.yaml`` holds ``name``, ``description``, ``licence``, ``source``, ``data_root``
(relative to the YAML), ``channels`` (must be ``[t1, b1000]``), ``csv`` and ``label_maps``.
The CSV has one row per scan: ``scan_id, subject_id, site, cohort (healthy|patient), t1, b1000,
skeleton_label, lesion_label``, optionally ``fold`` and :data:`OPTIONAL_PATH_COLUMNS`; paths are relative to ``data_root``.
Both cohorts live in one manifest. Loading validates everything it can (the NIfTI files: :mod:`sapkit.data.manifest_images`) and raises one
:class:`~sapkit.errors.ManifestError` listing every problem (scan, file, fix).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml

from sapkit.errors import ManifestError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.output_paths import OutputPlan, file_stem_problem
from sapkit.io.yaml_io import load_yaml_file
from sapkit.label_maps import LESION_CLASSES, SKELETON_CLASSES

__all__ = [
    "Manifest",
    "REQUIRED_COLUMNS",
    "PATH_COLUMNS", "OPTIONAL_PATH_COLUMNS",
    "load_manifest",
    "write_manifest",
    "resolve_manifest_path",
    "ID_COLUMNS",
    "declare_manifest_inputs",
]

REQUIRED_COLUMNS = ("scan_id", "subject_id", "site", "cohort", "t1", "b1000", "skeleton_label", "lesion_label")
PATH_COLUMNS = ("t1", "b1000", "skeleton_label", "lesion_label")
OPTIONAL_PATH_COLUMNS = ("fine_label", "adc", "dixon_water", "dixon_fat")  # sapkit preprocess: ADC, Dixon water/fat
CHANNELS = ("t1", "b1000")
#: Columns whose values become parts of file names (``<scan_id>_prob.nii.gz`` …): safe file-name stems only.
ID_COLUMNS = ("scan_id", "subject_id")
_COHORTS = ("healthy", "patient")


@dataclass(frozen=True)
class Manifest:
    """A loaded, validated manifest.

    Attributes
    ----------
    path : Path
        The ``manifest.yaml`` file.
    data_root : Path
        Absolute folder the CSV paths are relative to.
    scans : DataFrame
        One row per scan; path columns hold absolute paths as strings ('' when absent).
    label_maps : dict
        ``{"skeleton": {0: "background", ...}, "lesion": {0: "background", 1: "lesion"}}``.
    """

    path: Path
    data_root: Path
    name: str
    description: str
    licence: str
    source: str
    channels: tuple[str, ...]
    label_maps: dict[str, dict[int, str]]
    scans: pd.DataFrame = field(repr=False)
    csv_path: Path | None = None

    def healthy(self) -> pd.DataFrame:
        """Rows of the healthy (skeleton-labelled) cohort."""
        return self.scans[self.scans["cohort"] == "healthy"].reset_index(drop=True)

    def patients(self) -> pd.DataFrame:
        """Rows of the patient (lesion-labelled) cohort."""
        return self.scans[self.scans["cohort"] == "patient"].reset_index(drop=True)

    def row(self, scan_id: str) -> pd.Series:
        """The row of one scan; ManifestError if unknown."""
        hit = self.scans[self.scans["scan_id"] == scan_id]
        if hit.empty:
            raise ManifestError(f"scan '{scan_id}' is not in manifest {self.path}; check the scan_id column")
        return hit.iloc[0]

    def __repr__(self) -> str:
        n_h = int((self.scans["cohort"] == "healthy").sum())
        n_p = int((self.scans["cohort"] == "patient").sum())
        return f"Manifest(name: {self.name!r}; healthy scans: {n_h}; patient scans: {n_p}; root: {self.data_root})"

    def files(self) -> dict[Path, str]:
        """Every file the manifest is made of: the YAML, its CSV and each file a row names → what it is."""
        files = {self.path: f"the manifest {self.path.name}"}
        if self.csv_path is not None:
            files[self.csv_path] = f"the CSV of the manifest {self.path}"
        columns = PATH_COLUMNS + tuple(c for c in OPTIONAL_PATH_COLUMNS if c in self.scans.columns)
        for row in self.scans.to_dict("records"):
            for col in columns:
                if row[col]:
                    files.setdefault(Path(row[col]), f"{col} of scan {row['scan_id']} named by the manifest {self.path}")
        return files


def resolve_manifest_path(path: str | Path) -> Path:
    """``manifest.yaml`` itself, or the ``manifest.yaml`` inside a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.yaml"
    if not path.is_file():
        raise ManifestError(
            f"no manifest at {path}; pass a manifest.yaml or the folder holding it "
            "(generate one with `sapkit synth` or copy data_manifest/paper_cohort.yaml)"
        )
    return path


def _parse_label_maps(raw: Any, yaml_path: Path) -> dict[str, dict[int, str]]:
    maps = {"skeleton": dict(SKELETON_CLASSES), "lesion": dict(LESION_CLASSES)}
    if raw is None:
        return maps
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{yaml_path}: label_maps must be a mapping of name -> {{value: class name}}")
    for name, table in raw.items():
        try:
            maps[str(name)] = {int(k): str(v) for k, v in dict(table).items()}
        except (TypeError, ValueError):
            raise ManifestError(
                f"{yaml_path}: label_maps.{name} must map integer values to names, e.g. {{0: background, 1: lesion}}"
            ) from None
    return maps


def _escapes(root: Path, rel: str) -> bool:
    try:
        (root / rel).resolve().relative_to(root.resolve())
        return False
    except ValueError:
        return True
    except (RuntimeError, OSError):  # a symlink loop: reported by _path_problem
        return False


def _path_problem(sid: str, col: str, root: Path, rel: str) -> str | None:
    """Why a CSV path cannot be used (absolute, outside data_root, symlink loop), or None."""
    if Path(rel).is_absolute() or _escapes(root, rel):
        return f"{sid}: {col} path '{rel}' leaves data_root {root}; use a path relative to data_root"
    try:
        (root / rel).resolve(strict=False)
    except (RuntimeError, OSError):
        return f"{sid}: {col} path '{rel}' is a symbolic-link loop; point it at the real file"
    return None


def load_manifest(path: str | Path, *, check_files: bool = True, require_labels: bool = True) -> Manifest:
    """Load and validate a manifest.

    Parameters
    ----------
    path : str or Path
        ``manifest.yaml`` or the folder holding it.
    check_files : bool
        Also open every NIfTI file (readable, 3D, finite, same grid, known label values).
    require_labels : bool
        Refuse healthy scans without ``skeleton_label`` (training needs them); False for data that
        still has to be labelled (``sapkit check`` reports the stage, ``sapkit propagate`` labels it).

    Returns
    -------
    Manifest

    Raises
    ------
    ManifestError
        Listing every problem found, one line each, naming scan, file and fix.
    """
    yaml_path = resolve_manifest_path(path)
    meta = load_yaml_file(yaml_path, error=ManifestError) or {}
    if not isinstance(meta, Mapping):
        raise ManifestError(f"{yaml_path} must hold a mapping (name, data_root, csv, ...)")
    raw_channels = meta.get("channels", list(CHANNELS))
    if not isinstance(raw_channels, (list, tuple)) or not all(isinstance(c, str) for c in raw_channels):
        raise ManifestError(f"{yaml_path}: channels must be a list of names, got {raw_channels!r}; "
                            "write channels: [t1, b1000]")
    channels = tuple(c.lower() for c in raw_channels)
    if channels != CHANNELS:
        raise ManifestError(
            f"{yaml_path}: channels {list(channels)} ≠ {list(CHANNELS)}; sapkit models take channel 0 = T1 "
            "and channel 1 = DWI b1000 — reorder the channels (columns t1, b1000) and declare channels: [t1, b1000]"
        )
    data_root = (yaml_path.parent / str(meta.get("data_root", "."))).resolve()
    csv_path = yaml_path.parent / str(meta.get("csv", "manifest.csv"))
    if not csv_path.is_file():
        raise ManifestError(f"{yaml_path} names csv {csv_path}, which does not exist; fix the 'csv' key")
    try:
        scans = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        with open(csv_path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{csv_path} is not a readable CSV ({exc}); fix the file") from None
    except OSError as exc:
        raise ManifestError(f"{csv_path} cannot be read ({exc.strerror or exc}); check the path") from None
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise ManifestError(f"{csv_path} has duplicated column name(s) {duplicated}; keep one column of each name")
    label_maps = _parse_label_maps(meta.get("label_maps"), yaml_path)
    problems = _check_table(scans, csv_path, data_root, require_labels=require_labels)
    if problems:
        raise ManifestError(_format(problems, csv_path))
    scans = scans.copy()
    for col in PATH_COLUMNS + tuple(c for c in OPTIONAL_PATH_COLUMNS if c in scans.columns):
        scans[col] = [str(data_root / p) if p else "" for p in scans[col]]
    manifest = Manifest(
        path=yaml_path, data_root=data_root, name=str(meta.get("name", yaml_path.parent.name)),
        description=str(meta.get("description", "")), licence=str(meta.get("licence", "unknown")),
        source=str(meta.get("source", "")), channels=channels, label_maps=label_maps, scans=scans, csv_path=csv_path,
    )
    if check_files:
        from sapkit.data.manifest_images import validate_files

        problems = validate_files(manifest)
        if problems:
            raise ManifestError(_format(problems, csv_path))
    return manifest


def _format(problems: list[str], csv_path: Path) -> str:
    head = f"manifest {csv_path} has {len(problems)} problem(s):"
    return "\n".join([head] + [f"  - {p}" for p in problems])


def _check_table(scans: pd.DataFrame, csv_path: Path, data_root: Path, *, require_labels: bool = True) -> list[str]:
    missing = [c for c in REQUIRED_COLUMNS if c not in scans.columns]
    if missing:
        sep = next((c for c in ";\t|" if len(scans.columns) == 1 and c in str(scans.columns[0])), None)
        hint = f"; the file seems to be separated by {sep!r} — save it comma-separated" if sep else ""
        return [f"missing column(s) {missing}; the CSV needs {list(REQUIRED_COLUMNS)} (optional: fold){hint}"]
    if scans.empty:
        return ["no rows; add one row per scan (scan_id, subject_id, site, cohort, t1, b1000, ...)"]
    problems: list[str] = []
    dup = scans["scan_id"][scans["scan_id"].duplicated()].unique()
    if len(dup):
        problems.append(f"duplicate scan_id(s) {list(dup)}; every scan needs a unique id")
    for i, row in scans.iterrows():
        sid = row["scan_id"] or f"row {i + 2}"
        if not row["scan_id"] or not row["subject_id"]:
            problems.append(f"{sid}: empty scan_id or subject_id; fill both")
        for col in ID_COLUMNS:
            why = file_stem_problem(row[col]) if row[col] else None
            if why:
                problems.append(f"row {i + 2}: {col} {row[col]!r} {why}; ids become file names (<scan_id>_prob.nii.gz "
                                "…) — use letters, digits, '_', '-' and '.' (not first)")
        if row["cohort"] not in _COHORTS:
            problems.append(f"{sid}: cohort '{row['cohort']}' must be 'healthy' or 'patient'")
        for col in ("t1", "b1000"):
            if not row[col]:
                problems.append(f"{sid}: no {col} file; every scan needs both channels (t1, b1000)")
        if row["t1"] and row["b1000"] and os.path.realpath(data_root / row["t1"]) == os.path.realpath(data_root / row["b1000"]):
            problems.append(f"{sid}: t1 and b1000 name the same file {row['b1000']!r}; b1000 must be the diffusion-"
                            "weighted image (b = 1000 s/mm²) — fix the b1000 column")
        if require_labels and row["cohort"] == "healthy" and not row["skeleton_label"]:
            problems.append(f"{sid}: healthy scan without skeleton_label; label it (notebook 01) or drop the row")
        if row["cohort"] == "patient" and not row["lesion_label"]:
            problems.append(f"{sid}: patient scan without lesion_label; add the lesion mask path")
        for col in PATH_COLUMNS + tuple(c for c in OPTIONAL_PATH_COLUMNS if c in scans.columns):
            problem = _path_problem(sid, col, data_root, row[col]) if row[col] else None
            if problem:
                problems.append(problem)
    cohorts = scans[scans["cohort"].isin(_COHORTS)].groupby("subject_id")["cohort"].nunique()
    for subject in cohorts[cohorts > 1].index:  # one person in both: the healthy split and the folds would share them
        mine = scans[scans["subject_id"] == subject]
        healthy, patient = (list(mine.loc[mine["cohort"] == c, "scan_id"]) for c in _COHORTS)
        problems.append(f"subject {subject} has healthy scan(s) {healthy} and patient scan(s) {patient}; a subject "
                        "belongs to one cohort — give the other person their own subject_id, or drop the wrong rows")
    if "fold" in scans.columns:
        folds = scans[scans["fold"] != ""].groupby("subject_id")["fold"].nunique()
        for subject in folds[folds > 1].index:
            problems.append(
                f"subject {subject} appears in several folds; all scans of one subject must share one fold"
            )
    return problems


def write_manifest(
    out_dir: str | Path,
    scans: pd.DataFrame,
    *,
    name: str,
    description: str,
    licence: str = "CC0-1.0",
    source: str = "",
    label_maps: Mapping[str, Mapping[int, str]] | None = None,
    csv_name: str = "manifest.csv",
    data_root: str = ".",
) -> Path:
    """Write ``manifest.yaml`` and its CSV into ``out_dir`` (atomically).

    Parameters
    ----------
    scans : DataFrame
        Columns REQUIRED_COLUMNS (+ optional ``fold``); paths relative to ``out_dir/data_root``.

    Returns
    -------
    Path
        The ``manifest.yaml`` written.
    """
    out_dir = Path(out_dir)
    missing = [c for c in REQUIRED_COLUMNS if c not in scans.columns]
    if missing:
        raise ManifestError(f"cannot write manifest: scans table lacks column(s) {missing}")
    maps = {"skeleton": dict(SKELETON_CLASSES), "lesion": dict(LESION_CLASSES)}
    for key, table in (label_maps or {}).items():
        maps[key] = {int(k): str(v) for k, v in table.items()}
    meta = {
        "name": name, "description": description, "licence": licence, "source": source,
        "data_root": data_root, "channels": list(CHANNELS), "csv": csv_name, "label_maps": maps,
    }
    table = scans.copy().fillna("")
    table = table[[c for c in REQUIRED_COLUMNS] + [c for c in table.columns if c not in REQUIRED_COLUMNS]]
    atomic_write_text(out_dir / csv_name, table.to_csv(index=False))
    return atomic_write_text(out_dir / "manifest.yaml", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))


def declare_manifest_inputs(plan: OutputPlan, manifest: str | Path | Manifest, *, label: str = "data",
                            require_labels: bool = True) -> Manifest | None:
    """Declare a manifest's files and folders as inputs of ``plan`` (:mod:`sapkit.io.output_paths`).

    The YAML, its CSV and every file a row names become input files; the manifest's folder and
    ``data_root`` input folders (``label`` names them: ``"data"`` → "data folder"). The table is
    read (not the NIfTI files), so invalid rows — ids that would leave an output folder among them —
    are refused here, before anything is written. Returns the manifest, or None when there is none
    at ``manifest`` (the command reports that itself).

    Raises
    ------
    ManifestError
        The manifest's table is invalid (:func:`load_manifest` with ``check_files=False``).
    """
    if not isinstance(manifest, Manifest):
        given = Path(manifest)
        yaml_path = given / "manifest.yaml" if given.is_dir() else given
        if not yaml_path.is_file():
            return None  # nothing there to protect; the command says what is missing
        plan.reads(yaml_path, f"the manifest {yaml_path.name}")
        plan.reads_folder(yaml_path.parent, f"{label} folder (it holds {yaml_path.name} or the scans)")
        manifest = load_manifest(given, check_files=False, require_labels=require_labels)
    for path, what in manifest.files().items():
        plan.reads(path, what)
    for folder in (manifest.path.parent, manifest.data_root):
        plan.reads_folder(folder, f"{label} folder (it holds {manifest.path.name} or the scans)")
    return manifest

"""Bring raw-ish user data onto the kit's conventions without touching the inputs.

``prepare_manifest`` reads every scan of a manifest, optionally reorients it to RAS+ (voxel
permutation, no interpolation), resamples b1000 (trilinear) and label maps (nearest neighbour)
onto the T1 grid, optionally resamples everything to a target spacing in mm
(:func:`sapkit.imaging.resample.resample` and :func:`~sapkit.imaging.resample.target_grid`), and
writes new NIfTI files plus a new manifest into ``out_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.errors import ConfigError, SapkitError
from sapkit.imaging.resample import resample, target_grid
from sapkit.data.manifest import PATH_COLUMNS, Manifest, declare_manifest_inputs, load_manifest, write_manifest
from sapkit.io.output_paths import OutputPlan
from sapkit.io.nifti import nifti_header, read_image, read_label, reorient_to_ras, save_nifti

__all__ = ["declare_outputs", "check_out_dir", "prepare_manifest"]


def declare_outputs(plan: OutputPlan, manifest: str | Path | Manifest, out_dir: str | Path, *,
                    flag: str = "--out") -> None:
    """Declare what :func:`prepare_manifest` reads (the manifest and its files) and writes into ``out_dir``."""
    man = declare_manifest_inputs(plan, manifest)
    plan.writes_folder(out_dir, flag, lock=True)
    rows = [] if man is None else man.scans.to_dict("records")
    names = [f"{row['scan_id']}_{col}.nii.gz" for row in rows for col in PATH_COLUMNS if row[col]]
    plan.writes_in(out_dir, [*names, "manifest.yaml", "manifest.csv"], flag)


def _check_headers(manifest: Manifest) -> None:
    """Open every file's header (geometry, dtype, dimensions) before anything is written."""
    for _, row in manifest.scans.iterrows():
        for col in PATH_COLUMNS:
            if row[col]:
                nifti_header(row[col], what=col if col != "t1" else "T1")


def check_out_dir(manifest_path: str | Path, out_dir: str | Path) -> Manifest:
    """Load the manifest and refuse an ``out_dir`` whose outputs would replace an input; return the manifest.

    Raises
    ------
    OutputPathError
        ``out_dir`` is the data folder or the manifest's folder, or would receive a file the manifest names.
    """
    manifest = load_manifest(manifest_path, check_files=False)
    plan = OutputPlan("sapkit prepare")
    declare_outputs(plan, manifest, out_dir)
    plan.check()
    return manifest


def prepare_manifest(
    manifest_path: str | Path, out_dir: str | Path, *, reorient: str | None = "RAS",
    spacing_mm: Sequence[float] | None = None,
) -> Path:
    """Write a conformed copy of a manifest's data into ``out_dir``; return the new manifest.yaml.

    Every voxel keeps its world position (mm): the output grids are permutations (``reorient``)
    or resamplings of the input grids, and the files are written with non-zero qform/sform codes.
    Inputs are never written: an ``out_dir`` that is the data folder, the manifest's folder, or
    that would receive a file the manifest names is refused. Every header is checked before the
    first file is written; if a scan still fails later, the files written so far are removed.

    Raises
    ------
    ConfigError
        ``out_dir`` would overwrite an input, or bad ``reorient``/``spacing_mm``.
    NiftiError
        A file cannot be read (the message names it); nothing is left in ``out_dir``.
    """
    if reorient not in (None, "RAS"):
        raise ConfigError(f"reorient must be 'RAS' or None, got {reorient!r}")
    if spacing_mm is not None:
        spacing = np.asarray(spacing_mm, float)
        if spacing.shape != (3,) or not (np.isfinite(spacing).all() and (spacing > 0).all()):
            raise ConfigError(f"target spacing must be three positive values in mm, got {list(spacing_mm)}")
    manifest = check_out_dir(manifest_path, out_dir)
    out_dir = Path(out_dir)
    _check_headers(manifest)
    written: list[Path] = []
    try:
        rows = [_prepare_scan(row, out_dir, reorient, spacing_mm, written) for _, row in manifest.scans.iterrows()]
    except BaseException as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if not isinstance(exc, SapkitError):
            raise
        raise type(exc)(f"{exc}\n(sapkit prepare stopped; the {len(written)} file(s) it had written into {out_dir} "
                        "were removed)") from None
    table = pd.DataFrame(rows)
    for col in PATH_COLUMNS:
        table[col] = table[col].fillna("")
    return write_manifest(
        out_dir, table, name=f"{manifest.name} (prepared)",
        description=f"{manifest.description} — reoriented to {reorient or 'source'}, resampled to "
                    f"{list(spacing_mm) if spacing_mm else 'T1 grid'} by sapkit prepare",
        licence=manifest.licence, source=manifest.source, label_maps=manifest.label_maps,
    )


def _prepare_scan(row: pd.Series, out_dir: Path, reorient: str | None, spacing_mm: Sequence[float] | None,
                  written: list[Path]) -> dict[str, str]:
    """Conform one scan's files into ``out_dir``; append every written path to ``written``."""
    t1, affine, header = read_image(row["t1"], what="T1")
    if reorient:
        t1, affine = reorient_to_ras(t1, affine)
    shape = t1.shape
    if spacing_mm is not None:
        shape, new_affine = target_grid(t1.shape, affine, spacing_mm)
        t1 = resample(t1, affine, shape, new_affine)
        affine = new_affine
    new_row = {k: row[k] for k in ("scan_id", "subject_id", "site", "cohort")}
    if "fold" in row:
        new_row["fold"] = row["fold"]
    new_row["t1"] = f"{row['scan_id']}_t1.nii.gz"
    written.append(save_nifti(t1, affine, out_dir / new_row["t1"], header=header, dtype=np.float32))
    for col in ("b1000", "skeleton_label", "lesion_label"):
        new_row[col] = ""
        if not row[col]:
            continue
        if col == "b1000":
            data, src_affine, _ = read_image(row[col], what=col)
            data = resample(data, src_affine, shape, affine)
            dtype = np.float32
        else:
            data, src_affine, _ = read_label(row[col], what=col)
            data = resample(data, src_affine, shape, affine, nearest=True)
            dtype = np.int16
        new_row[col] = f"{row['scan_id']}_{col}.nii.gz"
        written.append(save_nifti(data, affine, out_dir / new_row[col], header=header, dtype=dtype))
    return new_row

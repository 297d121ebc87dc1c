"""What a manifest's files hold: each NIfTI opened and checked against its scan's T1.

:func:`validate_files` is what :func:`sapkit.data.manifest.load_manifest` runs with ``check_files=True``:
readable 3D images, finite values, not one constant value, channels and labels on the T1 grid,
label values the manifest's ``label_maps`` know, and a non-empty lesion mask for every patient scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sapkit.errors import NiftiError
from sapkit.io.nifti import check_same_grid, read_image, read_label

if TYPE_CHECKING:
    from sapkit.data.manifest import Manifest

__all__ = ["validate_files"]


def validate_files(manifest: Manifest) -> list[str]:
    """Open every file: readable 3D NIfTI, finite, channels/labels on the T1 grid, known labels.

    Returns the list of problems (empty when all is well); each names scan, file and fix.
    """
    problems: list[str] = []
    skeleton_values = set(manifest.label_maps["skeleton"])
    lesion_values = set(manifest.label_maps["lesion"])
    for _, row in manifest.scans.iterrows():
        sid = row["scan_id"]
        try:
            t1, affine, _ = read_image(row["t1"], what="T1")
        except NiftiError as exc:
            problems.append(f"{sid}: {exc}")
            continue
        problems += _constant_image(sid, "T1", row["t1"], t1)
        for col, kind in (("b1000", "image"), ("skeleton_label", "skeleton"), ("lesion_label", "lesion")):
            if not row[col]:
                continue
            try:
                if kind == "image":
                    data, aff, _ = read_image(row[col], what="b1000")
                    problems += _constant_image(sid, "b1000", row[col], data)
                else:
                    allowed = skeleton_values if kind == "skeleton" else lesion_values
                    data, aff, _ = read_label(row[col], allowed=allowed, what=col)
                check_same_grid(t1.shape, affine, data.shape, aff, name_a=f"T1 {row['t1']}", name_b=f"{col} {row[col]}")
                if kind == "lesion" and not data.any():
                    problems.append(
                        f"{sid}: lesion_label {row[col]} is empty (no voxel > 0); every patient scan needs its "
                        "lesion mask — check that the right file is named, or drop the row"
                    )
            except NiftiError as exc:
                problems.append(f"{sid}: {exc}")
    return problems


def _constant_image(sid: str, what: str, path: str, data: np.ndarray) -> list[str]:
    """An image holding one value everywhere has no signal: the wrong file, or a conversion that failed."""
    low, high = float(data.min()), float(data.max())
    if low != high:
        return []
    return [f"{sid}: {what} file {path} holds the value {low:g} in every voxel: no image (a failed conversion or the "
            "wrong file); check that the right file is named, or convert the series again"]

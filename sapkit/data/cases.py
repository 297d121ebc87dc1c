"""Load the scans of a manifest into memory as preprocessed training/inference cases.

A :class:`Case` holds one scan's two channels scaled per channel to [0, 1] (docs/method.md §3, the same
function at training and inference) and its label maps, all on the T1 grid in ``(X, Y, Z)``
voxel order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import nibabel as nib
import numpy as np
import numpy.typing as npt

from sapkit.io.nifti import read_label, read_scan, spacing_from_affine
from sapkit.data.manifest import Manifest
from sapkit.data.intensity import scale_intensity
from sapkit.jobs.progress import progress_bar

__all__ = ["Case", "load_case", "load_cases"]


@dataclass(frozen=True)
class Case:
    """One preprocessed scan.

    Attributes
    ----------
    image : (2, X, Y, Z) float32 in [0, 1]
        Channel 0 = T1, 1 = b1000, each clipped to its 1st–99th percentile and rescaled.
    skeleton : (X, Y, Z) int16 or None
        SAP skeleton label map (0 background, 1–9 bone regions).
    lesion : (X, Y, Z) uint8 or None
        Binary lesion mask.
    affine : (4, 4) float64
        Voxel → world (mm) matrix of the T1 grid.
    """

    scan_id: str
    subject_id: str
    cohort: str
    site: str
    image: npt.NDArray[np.float32]
    skeleton: npt.NDArray[np.int16] | None
    lesion: npt.NDArray[np.uint8] | None
    affine: npt.NDArray[np.float64]
    header: nib.Nifti1Header

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size in mm along X, Y, Z."""
        return spacing_from_affine(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (X, Y, Z) in voxels."""
        return tuple(self.image.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Case({self.scan_id}; cohort: {self.cohort}; shape: {self.shape}; spacing: {self.spacing_mm} mm)"


def load_case(manifest: Manifest, scan_id: str, *, percentiles: tuple[float, float] = (1.0, 99.0)) -> Case:
    """Read and preprocess one scan of ``manifest``."""
    row = manifest.row(scan_id)
    scan = read_scan(row["t1"], row["b1000"])
    skeleton = lesion = None
    if row["skeleton_label"]:
        skeleton = read_label(row["skeleton_label"], allowed=set(manifest.label_maps["skeleton"]), what="skeleton_label")[0]
    if row["lesion_label"]:
        lesion = (read_label(row["lesion_label"], allowed=set(manifest.label_maps["lesion"]), what="lesion_label")[0] > 0)
        lesion = lesion.astype(np.uint8)
    return Case(
        scan_id=str(row["scan_id"]), subject_id=str(row["subject_id"]), cohort=str(row["cohort"]),
        site=str(row["site"]), image=scale_intensity(scan.image, percentiles=percentiles),
        skeleton=skeleton, lesion=lesion, affine=scan.affine, header=scan.header,
    )


def load_cases(
    manifest: Manifest,
    scan_ids: Iterable[str] | None = None,
    *,
    percentiles: tuple[float, float] = (1.0, 99.0),
    cohort: str | None = None,
    subjects: Iterable[str] | None = None,
    progress: bool = False,
) -> list[Case]:
    """Read and preprocess several scans (all, by id, by cohort and/or by subject)."""
    table = manifest.scans
    if cohort is not None:
        table = table[table["cohort"] == cohort]
    if subjects is not None:
        wanted = set(map(str, subjects))
        table = table[table["subject_id"].isin(wanted)]
    ids = list(table["scan_id"]) if scan_ids is None else [s for s in scan_ids if s in set(table["scan_id"])]
    if progress:
        ids = progress_bar(ids, desc="loading scans", unit="scan")
    return [load_case(manifest, sid, percentiles=percentiles) for sid in ids]

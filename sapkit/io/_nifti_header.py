"""The header checks of the one NIfTI reader (:mod:`sapkit.io.nifti`): dimensions, geometry, orientation.

Rules (docs/design.md §6, "NIfTI geometry"): one 3D volume with voxels per file; a finite,
non-singular affine; voxel sizes > 0 and within :data:`PLAUSIBLE_SPACING_MM`; a warning when no
orientation is stored or when qform and sform disagree by more than a voxel. Private: call the
readers of :mod:`sapkit.io.nifti`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

from sapkit.errors import GeometryWarning, NiftiError

__all__ = ["PLAUSIBLE_SPACING_MM", "check_dimensions", "check_geometry", "voxel_corners"]

#: Voxel sizes (mm) a file may have: every MRI voxel lies within; outside, the header's units are wrong (m, µm).
PLAUSIBLE_SPACING_MM = (0.05, 50.0)


def _axcodes(affine: npt.ArrayLike) -> str:
    return "".join(nib.aff2axcodes(np.asarray(affine)))


def check_dimensions(img: nib.Nifti1Image, path: Path, what: str) -> None:
    """Raise unless the image is one 3D volume (or ``X × Y × Z × 1``) with voxels."""
    shape = tuple(int(n) for n in img.shape)
    if len(shape) < 3:
        raise NiftiError(f"{what} file {path} is {len(shape)}D with shape {shape}: one slice, not a volume; sapkit "
                         "needs one 3D volume per file (convert the whole series, e.g. dcm2niix on its DICOM folder)")
    if len(shape) > 4 or (len(shape) == 4 and shape[3] != 1):
        raise NiftiError(f"{what} file {path} is {len(shape)}D with shape {shape}; sapkit needs one 3D "
                         "volume per file (split 4D series into one file per channel)")
    if 0 in shape:
        raise NiftiError(f"{what} file {path} has no voxels (shape {shape}); the converter wrote an empty image — "
                         "convert the series again")


def voxel_corners(shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """The 8 corner voxel centres of a 3D grid as homogeneous (4, 8) coordinates (missing axes: one voxel)."""
    s = [max(int(n) - 1, 0) for n in tuple(shape[:3]) + (1,) * (3 - len(shape[:3]))]
    return np.array([[x, y, z, 1.0] for x in (0, s[0]) for y in (0, s[1]) for z in (0, s[2])]).T


def _raw_pixdim(img: nib.Nifti1Image) -> npt.NDArray[np.float64]:
    """Voxel sizes as stored in the file (before nibabel's header fixes)."""
    holder = img.file_map.get("header") if "header" in img.file_map else img.file_map["image"]
    with holder.get_prepare_fileobj("rb") as fh:
        raw = type(img.header).from_fileobj(fh, check=False)
    return np.asarray(raw["pixdim"][1:4], dtype=np.float64)


def check_geometry(img: nib.Nifti1Image, path: Path, what: str) -> None:
    """Raise on a non-finite/singular affine or bad spacing; warn on an ambiguous orientation.

    Geometry rule (docs/design.md, "NIfTI geometry"): the affine is nibabel's ``img.affine`` —
    the sform when ``sform_code > 0``, else the qform when ``qform_code > 0``, else nibabel's
    fallback (voxel sizes from pixdim, x flipped, origin at the volume centre).
    """
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise NiftiError(
            f"{what} file {path} has a non-finite affine (NaN/Inf in its voxel→world matrix); "
            "fix the header's sform/qform (re-export the file from the scanner or converter)"
        )
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if not (spacing > 0).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12 * float(np.prod(np.maximum(spacing, 1e-300))):
        raise NiftiError(
            f"{what} file {path} has an invalid geometry: voxel spacing ({', '.join(f'{v:.4g}' for v in spacing)}) mm "
            "or a singular (flat) affine; fix the header's pixdim/sform/qform (spacing must be > 0 mm)"
        )
    low, high = PLAUSIBLE_SPACING_MM
    if not ((spacing >= low) & (spacing <= high)).all():
        units = img.header.get_xyzt_units()[0]
        raise NiftiError(
            f"{what} file {path} has a voxel spacing of ({', '.join(f'{v:.4g}' for v in spacing)}) mm, outside "
            f"{low:g}–{high:g} mm (the voxel sizes of any whole-body MRI); the header's units are likely wrong "
            f"(metres or micrometres; its xyzt_units say {units!r}) — fix pixdim/sform/qform so that they hold mm"
        )
    header = img.header
    q_code, s_code = int(header["qform_code"]), int(header["sform_code"])
    pixdim = _raw_pixdim(img) if s_code == 0 else None  # nibabel silently sets a zero pixdim to 1 mm
    if pixdim is not None and not (np.isfinite(pixdim).all() and (pixdim > 0).all()):
        raise NiftiError(
            f"{what} file {path} has an invalid voxel spacing pixdim ({', '.join(f'{v:.4g}' for v in pixdim)}) mm "
            "and no sform; fix the header's pixdim (spacing must be > 0 mm)"
        )
    if q_code == 0 and s_code == 0:
        warnings.warn(
            f"{what} file {path} stores no orientation (qform_code = sform_code = 0); sapkit assumes nibabel's "
            f"fallback ({_axcodes(affine)}, spacing from pixdim, origin at the volume centre) — check "
            "left/right on a viewer, or fix the header", GeometryWarning, stacklevel=4,
        )
    elif q_code > 0 and s_code > 0:
        corners = voxel_corners(img.shape)
        qform, sform = header.get_qform(), header.get_sform()
        if np.isfinite(qform).all():
            gap = float(np.linalg.norm((qform @ corners - sform @ corners)[:3], axis=0).max())
            if gap > float(spacing.min()):
                warnings.warn(
                    f"{what} file {path}: its qform (code {q_code}, {_axcodes(qform)}) and sform (code {s_code}, "
                    f"{_axcodes(sform)}) disagree by {gap:.3g} mm, more than a voxel; sapkit uses the sform — "
                    "check which one is right and fix the header", GeometryWarning, stacklevel=4,
                )

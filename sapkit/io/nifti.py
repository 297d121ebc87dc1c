"""Strict NIfTI input/output on nibabel.

Conventions
-----------
- Arrays are in the file's voxel order ``(X, Y, Z)`` (nibabel's ``get_fdata`` order); a scan
  is channels-first ``(C, X, Y, Z)`` float32 with channel 0 = T1 and channel 1 = b1000.
- ``affine`` is the 4×4 voxel→world (RAS+ mm) matrix; ``spacing_mm`` the voxel size in mm.
- Every file is written atomically (:mod:`sapkit.io.atomic`), so a crash never leaves a
  truncated output; inputs are only ever read.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import nibabel as nib
import numpy as np
import numpy.typing as npt

from sapkit.errors import NiftiError
from sapkit.io._nifti_header import PLAUSIBLE_SPACING_MM, check_dimensions, check_geometry, voxel_corners
from sapkit.io.atomic import atomic_path

__all__ = [
    "grid_corners_mm",
    "GRID_TOLERANCE_VOXELS",
    "PLAUSIBLE_SPACING_MM",
    "Scan",
    "nifti_header",
    "open_nifti",
    "decode_voxels",
    "read_image",
    "read_scan",
    "read_label",
    "nifti_image",
    "save_nifti",
    "reorient_to_ras",
    "orientation_code",
    "spacing_from_affine",
    "check_same_grid",
]

_GRID_ATOL_MM = 1e-3
_DECODE_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Scan:
    """A two-channel scan on the T1 grid.

    Attributes
    ----------
    image : (C, X, Y, Z) float32
        Channel 0 = T1, channel 1 = DWI b1000 (raw intensities, not yet scaled).
    affine : (4, 4) float64
        Voxel → world (RAS+, mm) matrix of the T1 grid.
    header : nibabel.Nifti1Header
        Header of the T1 file (carries the qform/sform codes to write back).
    """

    image: npt.NDArray[np.float32]
    affine: npt.NDArray[np.float64]
    header: nib.Nifti1Header

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size in mm along X, Y, Z."""
        return spacing_from_affine(self.affine)

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.2f}" for s in self.spacing_mm)
        return (
            f"Scan(shape: {self.image.shape}; spacing: ({sp}) mm; "
            f"orientation: {orientation_code(self.affine)}; dtype: {self.image.dtype})"
        )


def spacing_from_affine(affine: npt.ArrayLike) -> tuple[float, float, float]:
    """Voxel size in mm: the column norms of the affine's 3×3 part."""
    a = np.asarray(affine, dtype=np.float64)
    return tuple(float(v) for v in np.sqrt((a[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]


def orientation_code(affine: npt.ArrayLike) -> str:
    """Three-letter axis code such as ``RAS`` or ``LPS`` (nibabel's aff2axcodes)."""
    return "".join(nib.aff2axcodes(np.asarray(affine)))


def _load(path: Path, what: str, *, decode: bool = True) -> nib.Nifti1Image:
    if path.is_symlink() and not path.exists():
        raise NiftiError(f"{what} file {path} is a broken symbolic link or a symlink loop; point it at the real file")
    if not path.exists():
        raise NiftiError(f"{what} file {path} does not exist; check the path in the manifest (relative to data_root)")
    if path.is_dir():
        raise NiftiError(f"{what} file {path} is a folder, not a NIfTI file; name the .nii.gz file inside it")
    try:
        img = nib.load(str(path))
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise NiftiError(
            f"{what} file {path} is not a readable NIfTI ({type(exc).__name__}: {exc}); "
            "re-export it as .nii or .nii.gz"
        ) from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiError(f"{what} file {path} is {type(img).__name__}, not NIfTI; convert it to .nii.gz")
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        kind = "RGB/colour" if dtype.fields is not None else ("complex-valued" if dtype.kind == "c" else str(dtype))
        raise NiftiError(
            f"{what} file {path} holds {kind} voxels ({dtype}); sapkit needs one real-valued grey level per voxel "
            "(convert it to a scalar magnitude image, e.g. float32)"
        )
    check_dimensions(img, path, what)  # before the geometry checks, which place a 3D grid's corners
    check_geometry(img, path, what)
    if decode and len(img.shape) == 4:  # (X, Y, Z, 1): decoded once here into a 3D image
        data = decode_voxels(path, what, lambda: np.asanyarray(img.dataobj))
        img = nib.Nifti1Image(data[..., 0], img.affine, img.header)
    return img


def decode_voxels(path: str | Path, what: str, read: Callable[[], _T]) -> _T:
    """Run ``read()`` — the one read of an opened image's voxels — and turn a truncated or corrupt
    file into a :class:`NiftiError` naming it.

    The voxels are decoded once, where they are used (a ``.nii.gz`` is decompressed once, not
    once to check it and again to read it).
    """
    try:
        return read()
    except _DECODE_ERRORS as exc:
        raise NiftiError(
            f"{what} file {path} is not a readable NIfTI ({type(exc).__name__}: {exc}); "
            "re-export it as .nii or .nii.gz"
        ) from None


def nifti_header(path: str | Path, *, what: str = "image") -> tuple[tuple[int, ...], npt.NDArray[np.float64]]:
    """Shape and affine of a NIfTI file after every header check of the readers (voxels not decoded).

    Raises
    ------
    NiftiError
        Missing, unreadable or non-3D file, non-real voxel type, or invalid geometry.
    """
    path = Path(path)
    img = _load(path, what, decode=False)
    return tuple(int(n) for n in img.shape[:3]), np.asarray(img.affine, dtype=np.float64)


def open_nifti(path: str | Path, *, what: str = "image") -> nib.Nifti1Image:
    """The nibabel image of a 3D NIfTI file after every header check of the readers (geometry, voxel type).

    The voxels are not decoded yet (a ``(X, Y, Z, 1)`` file stays 4D): read them once through
    :func:`decode_voxels`, which reports a truncated or corrupt file.

    Raises
    ------
    NiftiError
        Missing, unreadable or non-3D file, non-real voxel type, or invalid geometry.
    """
    return _load(Path(path), what, decode=False)


def read_image(path: str | Path, *, what: str = "image") -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], nib.Nifti1Header]:
    """Read a 3D intensity image as float32 with its affine and header.

    Raises
    ------
    NiftiError
        Missing, unreadable, non-3D file, or non-finite intensities.
    """
    path = Path(path)
    img = _load(path, what)
    data = decode_voxels(path, what, lambda: np.asarray(img.get_fdata(dtype=np.float32)))
    if not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise NiftiError(f"{what} file {path} has {n_bad} NaN/Inf voxels; replace them (e.g. with 0) before use")
    return data, np.asarray(img.affine, dtype=np.float64), img.header


def grid_corners_mm(shape: tuple[int, ...], affine: npt.ArrayLike) -> np.ndarray:
    """World positions (mm) of the 8 outer corners of a 3D grid's voxels (voxel edges at −½ and n − ½)."""
    n = [int(v) for v in tuple(shape)[:3]] + [1] * (3 - len(tuple(shape)[:3]))
    idx = np.array([[i, j, k, 1.0] for i in (-0.5, n[0] - 0.5) for j in (-0.5, n[1] - 0.5) for k in (-0.5, n[2] - 0.5)])
    return (np.asarray(affine, dtype=np.float64) @ idx.T).T[:, :3]


#: Two grids are the same when every outer corner lies within this fraction of the smallest voxel size.
GRID_TOLERANCE_VOXELS = 0.01


def check_same_grid(
    shape_a: tuple[int, ...], affine_a: npt.ArrayLike, shape_b: tuple[int, ...], affine_b: npt.ArrayLike,
    *, name_a: str, name_b: str, atol_mm: float = _GRID_ATOL_MM,
) -> None:
    """Raise NiftiError unless both volumes share shape and world position.

    The world positions of the 8 outer corners of the two grids (:func:`grid_corners_mm`) may differ
    by at most :data:`GRID_TOLERANCE_VOXELS` (1 %) of the smallest voxel size, or ``atol_mm`` if
    larger: a 2.5009 vs 2.5 mm slice spacing over 760 slices puts the far corners 0.68 mm apart
    and is refused, where comparing affine entries (within 1e-3) passed it.
    """
    if tuple(shape_a) != tuple(shape_b):
        raise NiftiError(
            f"{name_b} shape {tuple(shape_b)} ≠ {name_a} shape {tuple(shape_a)}; "
            f"resample {name_b} onto the {name_a} grid (sapkit prepare)"
        )
    spacing = min(min(spacing_from_affine(affine_a)), min(spacing_from_affine(affine_b)))
    tol = max(atol_mm, GRID_TOLERANCE_VOXELS * spacing)
    diff = float(np.linalg.norm(grid_corners_mm(shape_a, affine_a) - grid_corners_mm(shape_b, affine_b), axis=1).max())
    if not diff <= tol:
        raise NiftiError(
            f"{name_b} grid lies up to {diff:.4g} mm from the {name_a} grid at its corners (tolerance {tol:.3g} mm, "
            f"{GRID_TOLERANCE_VOXELS:g} of a voxel; {orientation_code(affine_b)} {spacing_from_affine(affine_b)} vs "
            f"{orientation_code(affine_a)} {spacing_from_affine(affine_a)}); "
            f"resample/reorient {name_b} onto the {name_a} grid (sapkit prepare)"
        )


def read_scan(t1_path: str | Path, b1000_path: str | Path) -> Scan:
    """Read the T1 and b1000 files of one scan into a channels-first array on the T1 grid.

    Raises
    ------
    NiftiError
        Either file unreadable, not 3D, non-finite, or b1000 not on the T1 grid.
    """
    t1, affine, header = read_image(t1_path, what="T1")
    b1000, b_affine, _ = read_image(b1000_path, what="b1000")
    check_same_grid(t1.shape, affine, b1000.shape, b_affine, name_a=f"T1 {t1_path}", name_b=f"b1000 {b1000_path}")
    return Scan(np.stack([t1, b1000]).astype(np.float32, copy=False), affine, header)


def read_label(
    path: str | Path, *, allowed: set[int] | None = None, what: str = "label",
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.float64], nib.Nifti1Header]:
    """Read an integer label map as int16 with its affine and header.

    Parameters
    ----------
    allowed : set of int, optional
        Label values declared in the manifest; any other value raises.

    Raises
    ------
    NiftiError
        Unreadable file, non-integer values, or values outside ``allowed``.
    """
    path = Path(path)
    img = _load(path, what)
    raw = decode_voxels(path, what, lambda: np.asarray(img.dataobj))
    slope, inter = img.header.get_slope_inter()
    scaled = slope not in (None, 1.0) or inter not in (None, 0.0)
    if raw.dtype.kind == "f" or scaled:
        # unscaled floats are the stored values: cast them instead of decoding the file again
        data = np.asarray(img.get_fdata(dtype=np.float64)) if scaled else raw.astype(np.float64)
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            raise NiftiError(
                f"{what} file {path} holds non-integer values; labels must be integers "
                "(resample label maps with nearest-neighbour interpolation)"
            )
        raw = data
    values = np.unique(raw)
    if values.size and (values.min() < -32768 or values.max() > 32767):
        raise NiftiError(f"{what} file {path} has values outside int16 range; relabel to small integers")
    labels = raw.astype(np.int16)
    if allowed is not None:
        bad = sorted(set(int(v) for v in values) - set(allowed))
        if bad:
            raise NiftiError(
                f"{what} file {path} contains label values {bad} not in the declared map {sorted(allowed)}; "
                "fix the label map or declare the values in manifest.yaml"
            )
    return labels, np.asarray(img.affine, dtype=np.float64), img.header


def _output_codes(header: nib.Nifti1Header | None) -> tuple[int, int]:
    """qform/sform codes to write: the source's, and never 0 (a code-0 file has no stored orientation)."""
    if header is None:
        return 1, 1
    q, s = int(header["qform_code"]), int(header["sform_code"])
    return (q or s or 1), (s or q or 1)


def nifti_image(
    array: npt.ArrayLike, affine: npt.ArrayLike, *, header: nib.Nifti1Header | None = None,
    dtype: npt.DTypeLike | None = None, slope: float | None = None,
) -> nib.Nifti1Image:
    """The kit's one NIfTI builder (every file and in-memory NIfTI sapkit writes): ``array`` (X, Y, Z[, C]) on ``affine``.

    qform and sform codes are the reference ``header``'s (its xyzt units too) and never 0 (a code 0
    gets the other code or 1, "scanner"), so every reader places the voxels where sapkit did; an
    affine with shear (which a qform cannot hold) is written as the sform only (qform_code 0).
    ``dtype``: on-disk dtype (default the array's; bool → uint8). ``slope``: ``scl_slope`` of
    quantised data (``array`` holds the stored integers, readers see ``array × slope``); default 1,
    intercept 0.
    """
    data = np.asarray(array)
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    affine = np.asarray(affine, dtype=np.float64)
    new_header = nib.Nifti1Header()
    if header is not None:
        new_header.set_xyzt_units(*header.get_xyzt_units())
    img = nib.Nifti1Image(data, affine, new_header)
    img.set_data_dtype(data.dtype)
    q_code, s_code = _output_codes(header)
    img.set_sform(affine, code=s_code)
    img.set_qform(affine, code=q_code)
    corners = voxel_corners(data.shape)
    if np.abs(img.header.get_qform() @ corners - affine @ corners).max() > _GRID_ATOL_MM:
        img.set_qform(affine, code=0)  # a shear a quaternion cannot hold: the sform alone defines the grid
    img.header.set_slope_inter(1.0 if slope is None else float(slope), 0.0)
    return img


def save_nifti(
    array: npt.ArrayLike, affine: npt.ArrayLike, path: str | Path, *,
    header: nib.Nifti1Header | None = None, dtype: npt.DTypeLike | None = None, slope: float | None = None,
) -> Path:
    """Save :func:`nifti_image` of ``array`` atomically (same arguments) to ``path``; returns ``path``."""
    path = Path(path)
    img = nifti_image(array, affine, header=header, dtype=dtype, slope=slope)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


def reorient_to_ras(array: npt.NDArray, affine: npt.ArrayLike) -> tuple[npt.NDArray, npt.NDArray[np.float64]]:
    """Reorient a 3D (or channels-first 4D) array by axis flips/permutations to RAS+.

    No resampling: voxels are only permuted, so values are exact and the world position of
    every voxel centre is unchanged.

    Returns
    -------
    array : ndarray on the RAS grid; affine : (4, 4) the new voxel → world matrix.
    """
    affine = np.asarray(affine, dtype=np.float64)
    spatial_shape = array.shape[-3:]
    current = nib.orientations.io_orientation(affine)
    target = nib.orientations.axcodes2ornt(("R", "A", "S"))
    transform = nib.orientations.ornt_transform(current, target)
    if array.ndim == 4:
        out = np.stack([nib.orientations.apply_orientation(c, transform) for c in array])
    else:
        out = nib.orientations.apply_orientation(array, transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, spatial_shape)
    return np.ascontiguousarray(out), new_affine

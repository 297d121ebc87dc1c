"""Turn one station image (a NIfTI file or a stack of DICOM slices) into a RAS float32 volume.

DICOM conversion uses **dcm2niix** by default: it is the field's converter (BIDS, fMRIPrep, every
large MRI archive), maintained against the vendors' quirks this kit cannot test — Siemens mosaic
and CSA headers, Philips precise-versus-display scaling and enhanced multi-frame files, GE's
private diffusion fields, slice-timing and gantry-tilt corrections — and it ships as a wheel with
its own JPEG 2000 / JPEG-LS decoders. It runs once per stack on symbolic links in a temporary
folder (never in the input tree), ~50 ms each. SimpleITK's GDCM series reader
(``raw.converter=simpleitk``) is the in-process alternative for plain single-frame series; both
give the same volume on the synthetic cohort (tested).

Enhanced (multi-frame) MR files are read by the kit's own reader
(:mod:`sapkit.preprocessing.enhanced`: per-frame positions, rescale, b-values and image classes from
the functional groups) when some of a file's frames are selected — one b-value of a diffusion file,
one Dixon class (in-phase, water, fat) of an mDixon file, named by the files' ``FrameFile`` paths or
``b_value`` — since dcm2niix converts a whole file and cannot pick frames; and when the converter is
SimpleITK (whose series reader cannot place frames). A whole Enhanced file goes to dcm2niix otherwise.

Every volume is reoriented to RAS+ by axis permutation only (values untouched) and its affine is
rounded to 10⁻⁴ mm, so the float32 geometry that NIfTI and dcm2niix store and the float64
geometry of a DICOM header give one identical grid.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import numpy.typing as npt

from sapkit.errors import NiftiError, SapkitError
from sapkit.io.nifti import read_image, reorient_to_ras
from sapkit.preprocessing.enhanced import FUNCTIONAL_GROUP_TAGS, frame_selection, is_enhanced, read_enhanced_volume

__all__ = ["snap_affine", "read_nifti_station", "convert_dicom", "dcm2niix_path"]

_AFFINE_DECIMALS = 4


def snap_affine(affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Round an affine to 10⁻⁴ mm (sub-micrometre), removing float32 storage noise.

    Examples
    --------
    >>> float(snap_affine(np.diag([np.float32(1.2), 1.2, 5.0, 1.0]))[0, 0])
    1.2
    """
    return np.round(np.asarray(affine, dtype=np.float64), _AFFINE_DECIMALS) + 0.0


def read_nifti_station(path: str | Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Read a station NIfTI as float32 in RAS+ orientation with a snapped affine.

    Raises
    ------
    NiftiError
        Missing, unreadable, non-3D or non-finite file.
    """
    data, affine, _ = read_image(path, what="station")
    data, affine = reorient_to_ras(data, affine)
    return data.astype(np.float32, copy=False), snap_affine(affine)


def dcm2niix_path() -> str:
    """The dcm2niix executable of the installed ``dcm2niix`` wheel (or the one on PATH)."""
    try:
        import dcm2niix

        return str(dcm2niix.bin)
    except (ImportError, AttributeError):
        import shutil

        found = shutil.which("dcm2niix")
        if not found:
            raise SapkitError("dcm2niix is not installed; pip install dcm2niix, or set raw.converter=simpleitk") from None
        return found


def _with_dcm2niix(files: Sequence[str], what: str) -> nib.Nifti1Image:
    with tempfile.TemporaryDirectory(prefix="sapkit-dcm2niix-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        out.mkdir()
        for i, f in enumerate(files):
            os.symlink(os.path.abspath(f), src / f"{i:05d}.dcm")
        cmd = [dcm2niix_path(), "-z", "n", "-b", "n", "-f", "station", "-w", "1", "-i", "n", "-o", str(out), str(src)]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        made = sorted(out.glob("*.nii"))
        if run.returncode != 0 or not made:
            tail = " | ".join((run.stdout + run.stderr).strip().splitlines()[-3:])
            raise SapkitError(f"dcm2niix could not convert {what} ({len(files)} files; {tail}); "
                              "check the files or try raw.converter=simpleitk")
        if len(made) > 1:
            raise SapkitError(f"dcm2niix split {what} into {len(made)} volumes ({', '.join(p.name for p in made)}); "
                              "the stack mixes acquisitions — split the series or tighten rules.yaml")
        img = nib.load(str(made[0]))
        return nib.Nifti1Image(np.asarray(img.get_fdata(dtype=np.float32)), img.affine)


def _with_simpleitk(files: Sequence[str], what: str) -> nib.Nifti1Image:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise SapkitError(f"SimpleITK could not read {what} ({str(exc).strip().splitlines()[-1]}); "
                          "try raw.converter=dcm2niix") from None
    array = sitk.GetArrayFromImage(image).astype(np.float32).transpose(2, 1, 0)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing())[None, :]
    lps[:3, 3] = image.GetOrigin()
    return nib.Nifti1Image(array, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps)


def _is_enhanced_file(path: str) -> bool:
    import pydicom

    try:
        return is_enhanced(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=FUNCTIONAL_GROUP_TAGS))
    except Exception:  # noqa: BLE001 - unreadable here: the converter reports it
        return False


def convert_dicom(files: Sequence[str], *, converter: str = "dcm2niix", what: str = "DICOM stack",
                  b_value: float | None = None, rules=None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Convert one stack of DICOM files to a RAS+ float32 volume (rescale slope/intercept applied).

    Parameters
    ----------
    files : sequence of str
        The slices of one stack (or one multi-frame file), sorted along the slice normal; an Enhanced
        file given as a :class:`~sapkit.preprocessing.enhanced.FrameFile` is read for its selected frames only.
    converter : str
        ``dcm2niix`` or ``simpleitk``.
    what : str
        Names the stack in error messages.
    b_value : float, optional
        The b-value (s/mm²) of the stack: selects the frames of an Enhanced diffusion file (with
        the class a ``FrameFile`` names, if any).
    rules : Rules, optional
        Where per-frame b-values are read (default: the packaged rules).

    Returns
    -------
    volume : (X, Y, Z) float32
    affine : (4, 4) float64
        Voxel → world (RAS+ mm), snapped to 10⁻⁴ mm.

    Raises
    ------
    SapkitError
        The converter failed or split the stack; the message names the stack and the fix.
    """
    frames = frame_selection(files, b_value)
    if files and (frames is not None or converter != "dcm2niix") and _is_enhanced_file(files[0]):
        from sapkit.preprocessing.rules import load_rules

        img = read_enhanced_volume(files, frames=frames, rules=rules or load_rules(), what=what)
    elif converter == "dcm2niix":
        img = _with_dcm2niix(files, what)
    else:
        img = _with_simpleitk(files, what)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise NiftiError(f"{what} converted to shape {data.shape}, not one 3D volume; split the series by b-value/echo")
    if not np.isfinite(data).all():
        raise NiftiError(f"{what} holds NaN/Inf values after conversion; check the DICOM rescale tags")
    data, affine = reorient_to_ras(data, img.affine)
    return data.astype(np.float32, copy=False), snap_affine(affine)

"""Fast readers of the evaluation's inputs: binary lesion masks and lesion probability maps.

Whole-body masks hold ~100 M voxels, of which well under 0.1 % are lesion. The readers keep the
on-disk integer dtype (no int16 copy), read uncompressed ``.nii`` files through nibabel's memory
map, and validate in one cheap pass (minimum and maximum) instead of sorting every voxel.
Errors are :class:`~sapkit.errors.NiftiError` naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from sapkit.errors import NiftiError
from sapkit.io.nifti import decode_voxels, open_nifti

__all__ = ["read_mask", "read_prob_map"]

_PROB_SLACK = 1e-4  # values this far outside [0, 1] (integer-storage quantisation) are clipped


def _decimal_slope(slope: float) -> int | None:
    """Number of decimals ``d`` when a float32 ``scl_slope`` is ``10**-d`` (percent maps: 2), else None."""
    for d in range(1, 7):
        if np.float32(slope) == np.float32(10.0 ** -d):
            return d
    return None


def read_mask(path: str | Path, *, what: str = "lesion mask") -> tuple[np.ndarray, npt.NDArray[np.float64]]:
    """Read a 3D lesion mask (any non-zero voxel is lesion) or skeleton label map with its affine, without copying it.

    Parameters
    ----------
    path : str or Path
        NIfTI file (``.nii`` is memory-mapped; ``.nii.gz`` is decompressed once). Background is 0,
        lesions any positive value (binary or instance labels); a skeleton map holds its class ids.
    what : str
        What the file is, for error messages.

    Returns
    -------
    mask : (X, Y, Z) integer array
        The stored values in their on-disk integer dtype (float-stored masks become uint8/int16).
    affine : (4, 4) float64
        Voxel → world (mm).

    Raises
    ------
    NiftiError
        Unreadable, not 3D, non-integer or non-finite values, negative values, or values above 32767.
    """
    path = Path(path)
    img = open_nifti(path, what=what)
    data = decode_voxels(path, what, lambda: np.asanyarray(img.dataobj))
    if data.ndim == 4:
        data = data[..., 0]
    if data.dtype.kind == "b" or data.dtype == np.uint8:
        return data, np.asarray(img.affine, dtype=np.float64)  # every value is valid: nothing to check
    if data.dtype.kind == "f":
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            raise NiftiError(f"{what} file {path} holds non-integer values; masks must hold integers "
                             "(resample label maps with nearest-neighbour interpolation)")
    elif data.dtype.kind not in "iu":
        raise NiftiError(f"{what} file {path} has dtype {data.dtype}; save masks as uint8 or int16")
    lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if lo < 0:  # an intensity image passed as a mask, or an "ignore" label that would count as lesion
        raise NiftiError(f"{what} file {path} holds negative values (min {lo:g}); masks and label maps hold 0 "
                         "for background and positive labels — pass the mask, not an image, and set any "
                         "'ignore' label to 0 first")
    if hi > 32767:
        raise NiftiError(f"{what} file {path} has values in [{lo:g}, {hi:g}], outside the int16 range; "
                         "relabel to small integers")
    if data.dtype.kind == "f":
        data = data.astype(np.uint8 if lo >= 0 and hi <= 255 else np.int16)
    return data, np.asarray(img.affine, dtype=np.float64)


def read_prob_map(path: str | Path) -> tuple[np.ndarray, npt.NDArray[np.float64]]:
    """Read a lesion probability map as float32 (X, Y, Z) in [0, 1] with its affine.

    Integer maps stored with a decimal ``scl_slope`` (0.01 for percent maps, 0.001 …) are scaled
    as ``value / 10**d`` in float64 and rounded once to float32, so a stored 70 % reads as
    exactly ``float32(0.7)`` and is foreground at threshold 0.7 (``docs/metrics.md`` §2).
    Values within 1e-4 outside [0, 1] (quantisation of uint16 storage) are clipped; anything
    further out, or NaN/Inf, raises.

    Raises
    ------
    NiftiError
        Missing or unreadable file, not 3D, or values outside [0, 1] / NaN, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise NiftiError(f"probability map {path} does not exist; run inference (notebook 04 / sapkit predict) first")
    img = open_nifti(path, what="probability map")
    proxy = img.dataobj  # nibabel keeps the file's scl_slope/scl_inter on the array proxy
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    decimals = None
    if hasattr(proxy, "get_unscaled") and img.get_data_dtype().kind in "iu" and inter == 0 and slope != 1:
        decimals = _decimal_slope(float(slope))
    if decimals is not None:
        raw = decode_voxels(path, "probability map", lambda: np.asanyarray(img.dataobj.get_unscaled()))
        prob = (raw / 10.0 ** decimals).astype(np.float32)
    else:
        prob = decode_voxels(path, "probability map", lambda: np.asarray(img.get_fdata(dtype=np.float32)))
    if prob.ndim == 4:
        prob = prob[..., 0]
    if prob.ndim != 3:
        raise NiftiError(f"probability map {path} has shape {prob.shape}; expected a 3D (X, Y, Z) map")
    lo, hi = float(prob.min(initial=0.0)), float(prob.max(initial=0.0))
    if not (-_PROB_SLACK <= lo and hi <= 1 + _PROB_SLACK):  # also catches NaN (min/max propagate it)
        n_bad = int((~((prob >= -_PROB_SLACK) & (prob <= 1 + _PROB_SLACK))).sum())
        raise NiftiError(f"probability map {path} holds {n_bad} voxel(s) outside [0, 1] or NaN (min {lo:g}, max "
                         f"{hi:g}); write softmax/sigmoid probabilities (sapkit predict), not logits or labels")
    if lo < 0 or hi > 1:
        prob = np.clip(prob, 0.0, 1.0)
    return prob, np.asarray(img.affine, dtype=np.float64)

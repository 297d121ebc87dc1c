"""Score a preprocessing run against the truth of the synthetic raw cohort.

:func:`sapkit.data.phantom.raw.generate_raw_cohort` keeps what a real acquisition hides: the
noise- and bias-free T1 and b1000, the tissue map, the labels on the cohort grid and every
station's scale, bias and DWI shift. These functions measure, per scan:

- **station uniformity**: the median T1 of muscle and of fat in the core of each station (its slab
  minus the overlaps with its neighbours), compared between adjacent stations — in the raw
  stations (smallest difference) and in the stitched output (largest). Tissue masks are the
  truth's, eroded by one voxel (6-connectivity) so partial volume at tissue borders does not enter
  the medians; pairs without such voxels (coarse grids) are left out;
- **fidelity**: Pearson correlation of the stitched T1 with the true T1 inside the body;
- **geometry**: error (mm) of the recovered DWI station shifts, distance of every skeleton class
  centroid from its true world position (mm and voxels), lesion volume kept (relative change).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage

from sapkit.imaging.resample import resample
from sapkit.io.folders import PreprocessDir

__all__ = ["station_cores", "adjacent_deviation", "shift_errors", "score_scan", "score_cohort"]

_MUSCLE, _FAT = 2, 1  # phantom Tissue codes


def station_cores(slabs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Slice ranges of each slab not covered by another slab (the station's core).

    Examples
    --------
    >>> station_cores([(20, 40), (0, 25)])
    [(25, 40), (0, 20)]
    """
    cores = []
    for i, (a, b) in enumerate(slabs):
        lo, hi = a, b
        for j, (c, d) in enumerate(slabs):
            if j == i or d <= a or c >= b:
                continue
            if c <= a:
                lo = max(lo, d)
            if d >= b:
                hi = min(hi, c)
        cores.append((lo, hi))
    return cores


def adjacent_deviation(medians: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``|m[k+1] / m[k] − 1|`` for a sequence of per-station medians (stations in table order)."""
    m = np.asarray(medians, dtype=np.float64)
    return np.abs(m[1:] / m[:-1] - 1.0)


def _median(values: npt.NDArray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def _medians(image: npt.NDArray, tissue: npt.NDArray, cores: list[tuple[int, int]]) -> npt.NDArray[np.float64]:
    """(stations, 2) median of muscle and of fat (eroded truth masks) in each core; NaN where a core has none."""
    masks = {t: ndimage.binary_erosion(tissue == t) for t in (_MUSCLE, _FAT)}
    return np.array([[_median(image[:, :, a:b][masks[t][:, :, a:b]]) for t in (_MUSCLE, _FAT)] for a, b in cores])


def _centroids_mm(label: npt.NDArray, affine: npt.NDArray) -> dict[int, npt.NDArray]:
    out = {}
    for value in np.unique(label[label > 0]):
        idx = np.argwhere(label == value).mean(axis=0)
        out[int(value)] = (affine @ np.r_[idx, 1.0])[:3]
    return out


def _load(path: Path) -> tuple[npt.NDArray, npt.NDArray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def shift_errors(prep_dir: str | Path, raw_dir: str | Path, scan_id: str) -> npt.NDArray[np.float64]:
    """Per DWI station (1 = head end), the distance (mm) between the recovered and the true shift.

    Empty when the scan's DWI station count differs from the truth's.
    """
    truth_st = pd.read_csv(Path(raw_dir) / "truth" / "stations.csv")
    found = pd.read_csv(PreprocessDir(prep_dir).table("stations"))
    found = found[(found["scan_id"] == scan_id) & (found["sequence"] == "dwi")].sort_values("station")
    known = truth_st[(truth_st["scan_id"] == scan_id) & (truth_st["sequence"] == "dwi")].sort_values("station")
    axes = ["shift_x_mm", "shift_y_mm", "shift_z_mm"]
    if len(found) != len(known):
        return np.zeros(0)
    return np.linalg.norm(found[axes].to_numpy() - known[axes].to_numpy(), axis=1)


def score_scan(prep_dir: str | Path, raw_dir: str | Path, scan_id: str) -> dict:
    """The acceptance measures of one scan (see the module docstring); keys name unit and stage.

    Raises
    ------
    FileNotFoundError
        The truth or the preprocessed files of ``scan_id`` are missing.
    """
    prep, raw = PreprocessDir(prep_dir), Path(raw_dir)
    truth_t1, t_affine = _load(raw / "truth" / f"{scan_id}_t1.nii.gz")
    tissue, _ = _load(raw / "truth" / f"{scan_id}_tissue.nii.gz")
    t1, affine = _load(prep.scan_file(scan_id, "t1"))
    on_truth = t1 if t1.shape == truth_t1.shape and np.abs(affine - t_affine).max() < 1e-3 else \
        resample(t1, affine, truth_t1.shape, t_affine)
    truth_st = pd.read_csv(raw / "truth" / "stations.csv")
    t1_st = truth_st[(truth_st["scan_id"] == scan_id) & (truth_st["sequence"] == "t1")].sort_values("station")
    cores = station_cores(list(zip(t1_st["slab_start"], t1_st["slab_stop"])))
    before = []
    for (_, row), (a, b) in zip(t1_st.iterrows(), cores):
        station, _ = _load(raw / "nifti" / scan_id / f"t1_st{row['station']}.nii.gz")
        image = np.zeros(truth_t1.shape, np.float32)
        image[:, :, row["slab_start"]:row["slab_stop"]] = station
        before.append(_medians(image, tissue, [(a, b)])[0])
    dev_before = adjacent_deviation(np.array(before))
    dev_after = adjacent_deviation(_medians(on_truth, tissue, cores))
    body = tissue > 0
    out = {"scan_id": scan_id,
           "muscle_dev_before": float(np.nanmin(dev_before[:, 0])), "fat_dev_before": float(np.nanmin(dev_before[:, 1])),
           "muscle_dev_after": float(np.nanmax(dev_after[:, 0])), "fat_dev_after": float(np.nanmax(dev_after[:, 1])),
           "t1_correlation": float(np.corrcoef(truth_t1[body].astype(np.float64), on_truth[body].astype(np.float64))[0, 1])}
    errors = shift_errors(prep_dir, raw_dir, scan_id)
    if len(errors):
        out["shift_error_mm"], out["shift_error_median_mm"] = float(errors.max()), float(np.median(errors))
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if prep.scan_file(scan_id, "skeleton").is_file():
        truth_c = _centroids_mm(*_load(raw / "truth" / f"{scan_id}_skeleton.nii.gz"))
        found_c = _centroids_mm(*_load(prep.scan_file(scan_id, "skeleton")))
        deltas = np.array([np.abs(found_c[k] - truth_c[k]) for k in truth_c if k in found_c])
        out["centroid_error_mm"] = float(np.linalg.norm(deltas, axis=1).max()) if len(deltas) else np.nan
        out["centroid_error_voxels"] = float((deltas / spacing).max()) if len(deltas) else np.nan
    if prep.scan_file(scan_id, "lesion").is_file():
        lesion, l_aff = _load(prep.scan_file(scan_id, "lesion"))
        truth_lesion, tl_aff = _load(raw / "truth" / f"{scan_id}_lesion.nii.gz")
        vol = float((lesion > 0).sum() * abs(np.linalg.det(l_aff[:3, :3])))
        true_vol = float((truth_lesion > 0).sum() * abs(np.linalg.det(tl_aff[:3, :3])))
        out["lesion_volume_change"] = abs(vol / true_vol - 1.0) if true_vol > 0 else np.nan
    return out


def score_cohort(prep_dir: str | Path, raw_dir: str | Path) -> pd.DataFrame:
    """:func:`score_scan` for every successfully preprocessed scan (one row each)."""
    scans = pd.read_csv(PreprocessDir(prep_dir).table("scans"))
    ok = scans[scans["status"].isin(["ok", "reused"])]["scan_id"]
    return pd.DataFrame([score_scan(prep_dir, raw_dir, s) for s in ok])

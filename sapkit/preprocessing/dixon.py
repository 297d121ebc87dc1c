"""Dixon water and fat images carried beside the T1: paired with the T1 stations, corrected and stitched like them.

A Dixon acquisition gives, per station, in-phase (the kit's T1 channel), opposed-phase, water and
fat images computed from the same echoes on one grid. Water and fat stations (``water``/``fat``
sequences of the rules or the stations CSV; from an Enhanced mDixon file, its WATER/FAT frames, named
by the station's ``FrameFile`` paths) are paired with the T1 (in-phase) stations by grid —
same shape, affine within :data:`GRID_TOLERANCE_MM` — and each class is carried only when every T1
station has exactly one image of it and every image has its T1 station; otherwise the class is left
out with the reason (station and z range in mm), never stitched into a part-volume.

Intensity handling: each water/fat station is divided by the N4 field fitted on its in-phase
station and multiplied by that station's inter-station standardisation factor, then stitched onto
the output grid with the T1's blend. Nothing is fitted on water or fat themselves: they share the
in-phase station's coil sensitivity and receiver scale (one reconstruction from the same echoes),
so the in-phase corrections apply, and applying them keeps ``water + fat ≈ in-phase`` voxel for
voxel on the output grid (no seam where the T1 has none). A scanner that rescales water and fat
series on their own breaks that premise. Nyúl standardisation is not applied to them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

from sapkit.preprocessing.convert import convert_dicom, read_nifti_station
from sapkit.preprocessing.geometry import Volume, corners_mm
from sapkit.preprocessing.stations import ScanSource
from sapkit.preprocessing.stitch import stitch

__all__ = ["DIXON_SEQUENCES", "DIXON_COLUMNS", "GRID_TOLERANCE_MM", "read_dixon", "pair_dixon", "stitch_dixon"]

#: The Dixon image classes carried, in output order.
DIXON_SEQUENCES = ("water", "fat")
#: Manifest column (and output file key, ``scans/<id>/<id>_<column>.nii.gz``) of each class.
DIXON_COLUMNS = {"water": "dixon_water", "fat": "dixon_fat"}
#: Largest difference (mm) between a Dixon image's affine and its T1 station's.
GRID_TOLERANCE_MM = 1e-3


def read_dixon(source: ScanSource, converter: str = "dcm2niix") -> dict[str, list[tuple[str, Volume]]]:
    """The scan's water and fat stations: class → [(name for messages, RAS+ volume)]; {} without Dixon."""
    found: dict[str, list[tuple[str, Volume]]] = {}
    for st in source.stations:
        if st.sequence not in DIXON_SEQUENCES:
            continue
        name = f"{st.sequence} station {st.station} ({st.description})"
        files = st.images[0][1]
        data, affine = read_nifti_station(files[0]) if st.kind == "nifti" else \
            convert_dicom(files, converter=converter, what=f"scan {source.scan_id} {name}")
        found.setdefault(st.sequence, []).append((name, Volume(data, affine)))
    return found


def _z_range(volume: Volume) -> str:
    z = corners_mm(volume.array.shape, volume.affine)[:, 2]
    return f"z {z.min():.0f}–{z.max():.0f} mm"


def pair_dixon(sequence: str, images: Sequence[tuple[str, Volume]], t1: Sequence[Volume],
               numbers: Sequence[int]) -> tuple[list[Volume] | None, str]:
    """Each T1 station's ``sequence`` image (in the order of ``t1``), or None and why it is left out.

    ``t1`` are the T1 stations (head → feet) and ``numbers`` their station numbers (1 = head end).
    """
    paired: list[Volume | None] = [None] * len(t1)
    problems = []
    for name, vol in images:
        hits = [k for k, t in enumerate(t1) if t.array.shape == vol.array.shape
                and np.abs(np.asarray(t.affine) - vol.affine).max() <= GRID_TOLERANCE_MM]
        if not hits:
            problems.append(f"{name} ({_z_range(vol)}) lies on no T1 station's grid")
        elif paired[hits[0]] is not None:
            problems.append(f"two {sequence} images on the grid of T1 station {numbers[hits[0]]}")
        else:
            paired[hits[0]] = vol
    problems += [f"T1 station {numbers[k]} ({_z_range(t1[k])}) has no {sequence} image on its grid"
                 for k, v in enumerate(paired) if v is None]
    if problems:
        return None, f"{sequence} left out: " + "; ".join(problems)
    return [v for v in paired if v is not None], ""


def stitch_dixon(found: dict[str, list[tuple[str, Volume]]], t1: Sequence[Volume], numbers: Sequence[int],
                 fields: Sequence[npt.NDArray], factors: Sequence[float], shape: Sequence[int], affine: npt.ArrayLike,
                 *, blend: str = "ramp") -> tuple[dict[str, npt.NDArray[np.float32]], list[str]]:
    """Water/fat on the output grid, corrected and blended as the T1 stations were.

    Parameters
    ----------
    found : from :func:`read_dixon`.
    t1, numbers : the T1 stations (head → feet; only their grids are used) and station numbers.
    fields, factors : per T1 station, its N4 field (on its grid) and standardisation factor; empty
        when the step is off.
    shape, affine : the output grid; ``blend`` as for the T1 (:func:`~sapkit.preprocessing.stitch.stitch`).

    Returns
    -------
    images : class → (X, Y, Z) float32 on the output grid, for each class carried.
    notes : per class found, its name when carried or why it was left out (``qc/scans.csv`` ``dixon``).
    """
    images, notes = {}, []
    for sequence in DIXON_SEQUENCES:
        if sequence not in found:
            continue
        paired, why = pair_dixon(sequence, found[sequence], t1, numbers)
        if paired is None:
            notes.append(why)
            continue
        stations = []
        for k, (vol, t) in enumerate(zip(paired, t1)):
            image = vol.array.astype(np.float32)
            if fields:
                image = (image / fields[k]).astype(np.float32)
            if factors:
                image = (image * np.float32(factors[k])).astype(np.float32)
            stations.append(Volume(image, t.affine))  # the T1 station's grid: the same blend weights
        images[sequence] = stitch(stations, shape, affine, blend=blend).image
        notes.append(sequence)
    return images, notes

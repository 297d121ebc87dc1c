"""Stitch stations onto one grid with a linear ramp across every overlap.

Stations are ordered along the stacking direction (the direction their centres spread along,
pointing to the head). On its own grid each station gets a weight that is 1 in its middle and
falls linearly to 0 across each overlap with a neighbour, over the overlap's full length, so two
neighbours' weights sum to 1 everywhere in their overlap and no seam is left by a step in
intensity. Each station and its weight are resampled onto the output grid (optionally through a
registration transform, fixed → moving) and the output is ``Σ w·v / Σ w``. Label maps take, per
voxel, the label of the station with the largest weight (ties: the station nearer the head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.imaging.resample import resample
from sapkit.preprocessing.geometry import Volume, corners_mm

__all__ = ["StitchResult", "stacking_direction", "station_order", "ramp_weight", "stitch"]


@dataclass(frozen=True)
class StitchResult:
    """A stitched volume: ``image`` (X, Y, Z) float32, ``coverage`` (X, Y, Z) bool (some station
    covers the voxel) and ``labels`` (name → (X, Y, Z) label map, the input dtype)."""

    image: npt.NDArray[np.float32]
    coverage: npt.NDArray[np.bool_]
    labels: dict[str, npt.NDArray]


def stacking_direction(volumes: Sequence[Volume]) -> npt.NDArray[np.float64]:
    """Unit vector (world) along which the station centres spread, pointing to the head (+S).

    Examples
    --------
    >>> a = np.eye(4); b = np.eye(4); b[2, 3] = -50.0
    >>> stacking_direction([Volume(np.zeros((4, 4, 60)), a), Volume(np.zeros((4, 4, 60)), b)]).tolist()
    [0.0, 0.0, 1.0]
    """
    centres = np.array([v.centre_mm for v in volumes])
    if len(centres) < 2 or np.ptp(centres, axis=0).max() < 1e-6:
        return np.array([0.0, 0.0, 1.0])
    _, _, vt = np.linalg.svd(centres - centres.mean(axis=0))
    u = vt[0]
    u = u if u[2] > 0 or (u[2] == 0 and u.sum() >= 0) else -u
    return u + 0.0


def station_order(volumes: Sequence[Volume]) -> list[int]:
    """Indices of ``volumes`` from the head end to the feet end."""
    u = stacking_direction(volumes)
    return sorted(range(len(volumes)), key=lambda i: -float(volumes[i].centre_mm @ u))


def _extent(volume: Volume, u: npt.NDArray) -> tuple[float, float]:
    t = corners_mm(volume.array.shape, volume.affine) @ u
    return float(t.min()), float(t.max())


def ramp_weight(volume: Volume, u: npt.ArrayLike, *, above: tuple[float, float] | None,
                below: tuple[float, float] | None) -> npt.NDArray[np.float32]:
    """Blend weight of one station on its own grid.

    Parameters
    ----------
    volume : Volume
    u : (3,) stacking direction (unit, towards the head).
    above, below : (low, high) positions (mm along ``u``) of the neighbouring stations' voxel
        centres, or None at the ends.

    Returns
    -------
    (X, Y, Z) float32 in [0, 1]: 1 outside overlaps, a linear ramp to 0 at the station's edge
    across each overlap.
    """
    u = np.asarray(u, dtype=np.float64)
    lo, hi = _extent(volume, u)
    a = volume.affine
    shape = volume.array.shape[:3]
    t = (u @ a[:3, 3]) + sum(np.arange(n).reshape([-1 if d == i else 1 for d in range(3)]) * float(u @ a[:3, i])
                             for i, n in enumerate(shape))
    w = np.ones(shape, np.float64)
    if above is not None and above[0] < hi:
        w = np.minimum(w, np.clip((hi - t) / (hi - above[0]), 0.0, 1.0))
    if below is not None and below[1] > lo:
        w = np.minimum(w, np.clip((t - lo) / (below[1] - lo), 0.0, 1.0))
    return np.broadcast_to(w, shape).astype(np.float32)


def stitch(volumes: Sequence[Volume], shape: Sequence[int], affine: npt.ArrayLike, *,
           transforms: Sequence | None = None, blend: str = "ramp",
           labels: Sequence[Mapping[str, npt.ArrayLike]] | None = None) -> StitchResult:
    """Blend stations onto the grid ``(shape, affine)``.

    Parameters
    ----------
    volumes : sequence of Volume
        The stations of one sequence (any order; ordered head → feet internally).
    shape, affine : the output grid (voxels; voxel → world RAS+ mm).
    transforms : sequence of SimpleITK transforms, optional
        Per station, output world → station world (a registration result); identity when None.
    blend : str
        ``ramp`` (weighted average) or ``none`` (each voxel from the station of largest weight).
    labels : sequence of mapping name → (X, Y, Z) label map, optional
        Per-station label maps on each station's grid (missing names count as label 0).

    Returns
    -------
    StitchResult
    """
    order = station_order(volumes)
    u = stacking_direction(volumes)
    extents = [_extent(volumes[i], u) for i in order]
    shape = tuple(int(s) for s in shape[:3])
    num = np.zeros(shape, np.float32)
    den = np.zeros(shape, np.float32)
    best = np.full(shape, -1.0, np.float32)
    label_names = sorted({n for m in (labels or []) for n in m})
    out_labels: dict[str, npt.NDArray] = {}
    for rank, i in enumerate(order):
        vol = volumes[i]
        above = extents[rank - 1] if rank > 0 else None
        below = extents[rank + 1] if rank + 1 < len(order) else None
        t = transforms[i] if transforms is not None else None
        w = resample(ramp_weight(vol, u, above=above, below=below), vol.affine, shape, affine, transform=t)
        v = resample(vol.array, vol.affine, shape, affine, transform=t)
        wins = w > best
        if blend == "ramp":
            num += w * v
            den += w
        else:
            num[wins] = v[wins]
            den[wins] = 1.0
        for name in label_names:
            lab = (labels or [{}] * len(volumes))[i].get(name)
            if lab is None:
                if name in out_labels:
                    out_labels[name][wins] = 0
                continue
            on_grid = resample(lab, vol.affine, shape, affine, transform=t, nearest=True)
            if name not in out_labels:
                out_labels[name] = np.zeros(shape, on_grid.dtype)
            out_labels[name][wins] = on_grid[wins]
        best = np.maximum(best, w)
    coverage = den > 1e-6
    image = np.zeros(shape, np.float32)
    np.divide(num, den, out=image, where=coverage)
    return StitchResult(image, coverage, out_labels)

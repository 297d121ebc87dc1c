"""The acquisition model of one scan: which stations cover which part of the body, and what is wrong.

Before anything changes the signal, each sequence's stations are laid out along the stacking
direction ``u`` (the direction the station centres spread along, towards the head; positions
``x · u`` in mm, reported as ``z`` because ``u`` is +S for an axial whole-body scan). A station
covers its voxel boxes: its outer slice centres ± half a slice. Named defects (:class:`Defect`):

- ``incomplete`` — a hole in one sequence between neighbouring stations: a **missing station**
  (the hole is at least half the median station length), **missing slices** (the two stations
  around the hole are the two parts of one series — same description, in-plane grid and slice
  lattice — and the hole is a whole number of slices: one DICOM file lost), or a **gap**
  (anything smaller); and a **coverage mismatch**: one sequence reaches more than
  ``max(2 coarser slices, 10 mm)`` beyond the other at the head or feet end (a DWI station with no
  T1 counterpart is cropped away with the T1 grid; a T1 station with no DWI gets b1000 = 0).
- ``inconsistent`` — a **spacing outlier** (a station whose voxel size differs by more than 20 %
  on an axis from the median of the sequence's other stations), or a **mirrored station**: the
  voxels contradict the header. Each seam (the overlap of two neighbours) is compared by the
  Pearson correlation of the two stations on the upper station's overlap slices (the lowest
  b-value for DWI); a station is flagged when its seams correlate below 0.35 on average as stored
  and mirroring its voxels along one axis raises that mean by at least 0.3 and to at least 0.6
  (:data:`MIRROR_STORED`, :data:`MIRROR_GAIN`, :data:`MIRROR_R`) without lowering any one seam by
  more than 0.1 (the neighbour of a mirrored station would gain on one seam and lose on the other).
  Measured on 30 synthetic scans of the smoke grid (6 mm T1, 12 × 12 × 9 mm DWI): intact seams
  correlate r ≥ 0.97 (T1) and ≥ 0.39 (DWI: noisier, coarser, shifted), no false alarm; of 120
  middle stations mirrored front–back or head–feet, 118 were found. Only voxels above 10 % of both stations'
  99th percentile count (the body, not the outline against the air, which a mirror keeps). A left–right mirror of a near-symmetric body may go unseen (its seams still
  correlate); head–feet and front–back mirrors do not.

What happens then is the profile's ``raw.on_incomplete`` (``sapkit.preprocessing.pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.imaging.resample import resample
from sapkit.preprocessing.geometry import Volume, corners_mm
from sapkit.preprocessing.stitch import stacking_direction

if TYPE_CHECKING:
    from sapkit.preprocessing.pipeline import LoadedStation

__all__ = ["MIRROR_STORED", "MIRROR_GAIN", "MIRROR_R", "StationExtent", "Seam", "Defect", "Acquisition", "model_acquisition"]

#: A station whose seams correlate (mean r) below this as stored …
MIRROR_STORED = 0.35
#: … is mirrored when mirroring its voxels raises that mean by at least this much …
MIRROR_GAIN = 0.3
#: … and to at least this value.
MIRROR_R = 0.6
_SPACING_TOLERANCE = 0.2  # relative, per axis
_GAP_SLICES = 0.25  # a hole shorter than this many slices is rounding, not a gap
_BODY = 0.1  # seam voxels above this fraction of both stations' 99th percentile are compared
_SEAM_DROP = 0.1  # a mirrored station may not lower any of its seams' r by more than this
_AXES = ("X (left-right)", "Y (back-front)", "Z (feet-head)")


@dataclass(frozen=True)
class StationExtent:
    """Where one station lies: ``lo_mm``–``hi_mm`` (its voxel boxes along ``u``), its voxel size
    ``spacing_mm`` (X, Y, Z), its slice step along ``u`` (mm) and slice axis (0–2), shape (voxels)."""

    sequence: str
    number: int
    description: str
    lo_mm: float
    hi_mm: float
    spacing_mm: tuple[float, float, float]
    slice_mm: float
    slice_axis: int
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class Seam:
    """The overlap of two neighbouring stations (``upper`` nearer the head): its length (mm) and the
    correlation ``r`` of the two stations on it (NaN when it holds < 2 slices or no signal)."""

    sequence: str
    upper: int
    lower: int
    overlap_mm: float
    r: float


@dataclass(frozen=True)
class Defect:
    """One named defect: ``status`` (``incomplete`` or ``inconsistent``), ``kind`` (``missing_station``,
    ``missing_slices``, ``gap``, ``coverage``, ``spacing``, ``mirrored``), the station and the world
    range ``range_mm`` (low, high along ``u``, mm) it concerns, and the sentence that says so."""

    status: str
    kind: str
    sequence: str
    station: int
    range_mm: tuple[float, float]
    detail: str

    @property
    def message(self) -> str:
        """``<status>: <detail>``, e.g. ``incomplete: T1 station 3 missing, z 412–496 mm``."""
        return f"{self.status}: {self.detail}"


@dataclass(frozen=True)
class Acquisition:
    """The stations of each sequence (head → feet), their seams and the defects found."""

    direction: tuple[float, float, float]
    t1: tuple[StationExtent, ...]
    dwi: tuple[StationExtent, ...]
    seams: tuple[Seam, ...]
    defects: tuple[Defect, ...]

    @property
    def status(self) -> str:
        """``ok``, or the status of the first defect (``incomplete`` before ``inconsistent``)."""
        return self.defects[0].status if self.defects else "ok"

    def __repr__(self) -> str:
        return (f"Acquisition({len(self.t1)} T1 + {len(self.dwi)} DWI stations; status: {self.status}; "
                f"defects: {[d.message for d in self.defects]})")


def _mm(v: float) -> str:
    return f"{v:.0f}".replace("-", "−")


def _range(lo: float, hi: float) -> str:
    """``z lo–hi mm``, widened to whole mm (so the range always holds the defect)."""
    return f"z {_mm(np.floor(lo + 1e-6))}–{_mm(np.ceil(hi - 1e-6))} mm"


def _name(sequence: str) -> str:
    return sequence.upper() if sequence == "dwi" else "T1"


def _extent(sequence: str, station: "LoadedStation", u: npt.NDArray) -> StationExtent:
    vol = station.volume()
    shape = vol.array.shape[:3]
    t = corners_mm(shape, vol.affine) @ u
    steps = np.abs(vol.affine[:3, :3].T @ u)  # mm along u per voxel step on each axis
    half = 0.5 * float(steps.sum())
    axis = int(np.argmax(steps))
    return StationExtent(sequence, station.number, station.description, float(t.min()) - half, float(t.max()) + half,
                         vol.spacing_mm, float(steps[axis]), axis, tuple(int(n) for n in shape))  # type: ignore[arg-type]


def _same_series(a: "LoadedStation", b: "LoadedStation", ea: StationExtent, eb: StationExtent) -> bool:
    """The two stations look like parts of one series: same description, in-plane grid and directions."""
    keep = [i for i in range(3) if i != ea.slice_axis]
    da, db = a.affine[:3, :3], b.affine[:3, :3]
    return (a.description == b.description and ea.slice_axis == eb.slice_axis
            and all(ea.shape[i] == eb.shape[i] for i in keep) and np.allclose(da, db, atol=1e-3))


def _holes(sequence: str, stations: Sequence["LoadedStation"], extents: list[StationExtent],
           other: list[StationExtent]) -> list[Defect]:
    defects = []
    lengths = [e.hi_mm - e.lo_mm for e in extents]
    for k in range(len(extents) - 1):
        up, low = extents[k], extents[k + 1]
        hole = up.lo_mm - low.hi_mm
        step = max(up.slice_mm, low.slice_mm)
        if hole <= _GAP_SLICES * step:
            continue
        where = _range(low.hi_mm, up.lo_mm)
        covering = [o.number for o in other if o.lo_mm < low.hi_mm + 0.5 * hole < o.hi_mm]
        by = f" ({_name(other[0].sequence)} station {covering[0]} does)" if covering else ""
        missed = hole / step
        if _same_series(stations[k], stations[k + 1], up, low) and abs(missed - round(missed)) < 0.1:
            n = int(round(missed))
            defects.append(Defect("incomplete", "missing_slices", sequence, up.number, (low.hi_mm, up.lo_mm),
                                  f"{_name(sequence)} station {up.number} missing {n} slice{'s' * (n > 1)}, {where}: the "
                                  f"series '{up.description}' jumps there and was cut in two (stations {up.number} "
                                  f"and {low.number}); re-export the missing DICOM file(s)"))
        elif hole >= 0.5 * float(np.median(lengths)):
            defects.append(Defect("incomplete", "missing_station", sequence, up.number + 1, (low.hi_mm, up.lo_mm),
                                  f"{_name(sequence)} station {up.number + 1} missing, {where}: no {_name(sequence)} station "
                                  f"covers it between stations {up.number} and {low.number}{by}; add the station to "
                                  "the input"))
        else:
            defects.append(Defect("incomplete", "gap", sequence, up.number, (low.hi_mm, up.lo_mm),
                                  f"gap of {hole:.1f} mm between {_name(sequence)} stations {up.number} and "
                                  f"{low.number}, {where}: the stations neither overlap nor touch{by}; check the "
                                  "table positions of the acquisition"))
    return defects


def _coverage(t1: list[StationExtent], dwi: list[StationExtent]) -> list[Defect]:
    """Ends where one sequence reaches beyond the other."""
    if not t1 or not dwi:
        return []
    defects = []
    tol = max(2 * max(e.slice_mm for e in t1 + dwi), 10.0)
    for a, b in ((dwi, t1), (t1, dwi)):
        a_lo, a_hi = min(e.lo_mm for e in a), max(e.hi_mm for e in a)
        b_lo, b_hi = min(e.lo_mm for e in b), max(e.hi_mm for e in b)
        for lo, hi, end, station in ((a_lo, b_lo, "feet", a[-1]), (b_hi, a_hi, "head", a[0])):
            if hi - lo > tol:
                defects.append(Defect("incomplete", "coverage", station.sequence, station.number, (lo, hi),
                                      f"{_name(station.sequence)} station {station.number} has no "
                                      f"{_name(b[0].sequence)} counterpart at the {end} end, {_range(lo, hi)} not "
                                      f"covered by {_name(b[0].sequence)} (the output grid is the T1 stations' union"
                                      f"{': this part would be cropped away' if station.sequence == 'dwi' else ''})"
                                      f"; add the missing {_name(b[0].sequence)} station"))
    return defects


def _spacing(extents: list[StationExtent]) -> list[Defect]:
    defects = []
    for k, e in enumerate(extents):
        others = [o.spacing_mm for j, o in enumerate(extents) if j != k]
        if not others:
            continue
        ref = np.median(np.array(others), axis=0)
        if (np.abs(np.array(e.spacing_mm) / ref - 1) > _SPACING_TOLERANCE).any():
            fmt = lambda s: "×".join(f"{v:.3g}" for v in s)  # noqa: E731
            defects.append(Defect("inconsistent", "spacing", e.sequence, e.number, (e.lo_mm, e.hi_mm),
                                  f"{_name(e.sequence)} station {e.number} has {fmt(e.spacing_mm)} mm voxels, the other "
                                  f"{_name(e.sequence)} stations {fmt(ref)} mm, {_range(e.lo_mm, e.hi_mm)}; check the "
                                  "protocol (or that the station belongs to this series)"))
    return defects


def _overlap_grid(upper: Volume, e_up: StationExtent, lo: float, hi: float, u: npt.NDArray):
    """The upper station's slices whose centres lie in [lo, hi] along ``u``: (slices, affine, index)."""
    a, axis = upper.affine, e_up.slice_axis
    t = float(u @ a[:3, 3]) + np.arange(upper.array.shape[axis]) * float(u @ a[:3, axis])
    keep = np.flatnonzero((t >= lo - 1e-3) & (t <= hi + 1e-3))
    if len(keep) < 2:
        return None
    first = int(keep.min())
    affine = a.copy()
    affine[:3, 3] = a[:3, 3] + first * a[:3, axis]
    index = [slice(None)] * 3
    index[axis] = slice(first, int(keep.max()) + 1)
    return upper.array[tuple(index)], affine


def _corr(x: npt.NDArray, y: npt.NDArray) -> float:
    x, y = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
    if x.std() < 1e-9 or y.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _seam_r(upper: Volume, lower: Volume, e_up: StationExtent, e_low: StationExtent, u: npt.NDArray) -> float:
    lo = max(e_up.lo_mm + 0.5 * e_up.slice_mm, e_low.lo_mm + 0.5 * e_low.slice_mm)
    hi = min(e_up.hi_mm - 0.5 * e_up.slice_mm, e_low.hi_mm - 0.5 * e_low.slice_mm)
    crop = _overlap_grid(upper, e_up, lo, hi, u) if hi > lo else None
    if crop is None:
        return float("nan")
    fixed, affine = crop
    moving = resample(lower.array, lower.affine, fixed.shape, affine, default=np.nan)
    inside = np.isfinite(moving)
    body = inside & (fixed > _BODY * np.percentile(fixed, 99)) & (moving > _BODY * np.nanpercentile(moving, 99))
    return _corr(fixed[body], moving[body]) if body.sum() > 10 else float("nan")


def _mirrored(sequence: str, volumes: list[Volume], extents: list[StationExtent], u) -> tuple[list[Seam], list[Defect]]:
    seams = [Seam(sequence, extents[k].number, extents[k + 1].number,
                  max(0.0, extents[k + 1].hi_mm - extents[k].lo_mm),
                  _seam_r(volumes[k], volumes[k + 1], extents[k], extents[k + 1], u)) for k in range(len(volumes) - 1)]
    defects = []
    for k, vol in enumerate(volumes):
        pairs = [(j, j + 1) for j in (k - 1, k) if 0 <= j < len(seams) and np.isfinite(seams[j].r)]
        if not pairs:
            continue
        stored_rs = [seams[a].r for a, _ in pairs]
        stored = float(np.mean(stored_rs))
        if stored >= MIRROR_STORED:  # seams that agree: nothing to explain
            continue
        best, best_axis = -np.inf, -1
        for axis in range(3):
            flipped = Volume(np.flip(vol.array, axis), vol.affine)
            rs = [_seam_r(flipped if a == k else volumes[a], flipped if b == k else volumes[b], extents[a], extents[b], u)
                  for a, b in pairs]
            worse = any(r < r0 - _SEAM_DROP for r, r0 in zip(rs, stored_rs))  # a good seam made bad: not this one
            r = float(np.mean(rs)) if np.isfinite(rs).all() and not worse else -np.inf
            if r > best:
                best, best_axis = r, axis
        if best >= MIRROR_R and best - stored >= MIRROR_GAIN:
            e = extents[k]
            defects.append(Defect("inconsistent", "mirrored", sequence, e.number, (e.lo_mm, e.hi_mm),
                                  f"{_name(sequence)} station {e.number} voxels are mirrored along {_AXES[best_axis]} "
                                  f"against its header, {_range(e.lo_mm, e.hi_mm)}: its overlaps with its neighbours "
                                  f"correlate r = {stored:.2f} as stored, {best:.2f} mirrored; re-export the station "
                                  "(a corrupt conversion)"))
    return seams, defects


def model_acquisition(t1: Sequence["LoadedStation"], dwi: Sequence["LoadedStation"]) -> Acquisition:
    """Lay out a scan's stations (each list ordered head → feet, numbered from 1) and find its defects.

    Parameters
    ----------
    t1, dwi : sequences of LoadedStation
        As :func:`sapkit.preprocessing.pipeline.load_scan` returns them (anything with ``number``,
        ``description``, ``affine`` and ``volume()``: the T1 image, or the lowest b-value).

    Returns
    -------
    Acquisition
        Defects ordered: incomplete (holes, coverage) before inconsistent (spacing, mirrored).
    """
    u = stacking_direction([s.volume() for s in list(t1) + list(dwi)])
    ext = {seq: [_extent(seq, s, u) for s in stations] for seq, stations in (("t1", t1), ("dwi", dwi))}
    defects = _holes("t1", t1, ext["t1"], ext["dwi"]) + _holes("dwi", dwi, ext["dwi"], ext["t1"])
    defects += _coverage(ext["t1"], ext["dwi"])
    defects += _spacing(ext["t1"]) + _spacing(ext["dwi"])
    seams = []
    for seq, stations in (("t1", t1), ("dwi", dwi)):
        s, d = _mirrored(seq, [st.volume() for st in stations], ext[seq], u)
        seams += s
        defects += d
    return Acquisition(tuple(float(v) for v in u), tuple(ext["t1"]), tuple(ext["dwi"]), tuple(seams),  # type: ignore[arg-type]
                       tuple(defects))

"""DWI station-to-station registration chained from the centre, then whole-body DWI → T1.

The authors' order (Ceranka et al. 2023), offered as ``raw.register.dwi_stations: chained``
(the default ``none`` registers every DWI station to the T1 on its own, :mod:`.register`):

1. **Chain.** The centre station (index ``(n − 1) // 2`` of the stations ordered head → feet, the
   ``centre`` rule of :func:`sapkit.preprocessing.isis.reference_station`) is fixed. Going outwards,
   each station (moving) is registered to its already-aligned inner neighbour (fixed) over their
   overlap: a translation, normalised cross-correlation (both are the same contrast, the lowest
   b-value, whose scales may still differ a little), sampled on every fixed body voxel within
   the moving station's extent along the table ± ``margin_mm``; the simplex starts from the best
   metric of a scan along the table (1.5 mm steps, ± half the overlap, at most ``max_shift_mm``),
   because slowly changing anatomy (legs) gives local minima a few mm apart there. A station's
   offset ``c_k`` (mm, RAS+) — where its content sits relative to the centre station's frame — is
   its neighbour's offset plus the pair's translation (for translations, the same as registering
   to the neighbour moved by its offset).
2. **Whole body.** The stations are stitched through their offsets onto the union of the DWI
   grids and that one volume (its voxels outside every station masked out) is registered to the
   stitched T1 by :func:`.register.register_station` (``transform``: translation or rigid, Mattes
   MI) — one transform ``W`` for the whole body.
3. Station ``k``'s transform, fixed (T1) world → station world, is ``x ↦ W(x) + c_k``; its
   ``translation_mm`` is the displacement of the station centre, ``W(p) + c_k − p``.

A pair moved more than ``max_shift_mm`` keeps the inner neighbour's offset (``accepted`` False,
QC warns). Optimiser, pyramid and thresholds are those of ``raw.register``; deterministic.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

from sapkit.config import RegisterConfig
from sapkit.imaging.resample import to_sitk
from sapkit.preprocessing.geometry import Volume, corners_mm, union_grid
from sapkit.preprocessing.register import (Registration, crop_along, register_station, registration_method,
                                           run_registration)
from sapkit.preprocessing.stitch import stacking_direction, station_order, stitch

__all__ = ["chain_order", "register_pair", "station_transform", "register_chained"]

_MIN_VOXELS = 50  # fewer joint body voxels in an overlap: no pair registration (offset of the neighbour kept)
_SCAN_STEP_MM = 1.5  # the start of a pair's simplex: the best of a scan along the table at this step (mm)


def chain_order(n: int) -> list[tuple[int, int]]:
    """``(moving, fixed)`` index pairs of a chain from the centre of ``n`` stations (head → feet).

    Examples
    --------
    >>> chain_order(5)
    [(1, 2), (0, 1), (3, 2), (4, 3)]
    >>> chain_order(4)
    [(0, 1), (2, 1), (3, 2)]
    """
    ref = (n - 1) // 2
    return [(k, k + 1) for k in range(ref - 1, -1, -1)] + [(k, k - 1) for k in range(ref + 1, n)]


def _shifted(volume: Volume, offset_mm: npt.ArrayLike) -> Volume:
    """``volume`` placed ``offset_mm`` lower (its content moved back by its offset: aligned)."""
    affine = volume.affine.copy()
    affine[:3, 3] -= np.asarray(offset_mm, dtype=np.float64)
    return Volume(volume.array, affine)


def register_pair(fixed: Volume, fixed_mask: npt.ArrayLike, moving: Volume, *,
                  config: RegisterConfig = RegisterConfig(), threads: int = 2
                  ) -> tuple[npt.NDArray[np.float64], str, bool]:
    """Translation of ``moving`` relative to its overlapping neighbour ``fixed`` (same contrast).

    Parameters
    ----------
    fixed, moving : Volume
        Two neighbouring stations at their scanner positions (``fixed`` is the inner one).
    fixed_mask : (X, Y, Z) bool
        Body mask of ``fixed``; the metric samples these voxels within ``moving``'s extent ± ``margin_mm``.

    Returns
    -------
    translation_mm : (3,) float
        ``moving``'s content sits this far from ``fixed``'s (RAS+ mm); zeros when not accepted.
    stop : str
        Optimiser stop condition, or why the pair was not registered.
    accepted : bool
    """
    u = stacking_direction([fixed, moving])
    t = corners_mm(moving.array.shape, moving.affine) @ u
    crop, crop_mask = crop_along(fixed, np.asarray(fixed_mask, dtype=bool), t.min() - config.margin_mm,
                                 t.max() + config.margin_mm, u)
    if crop_mask.sum() < _MIN_VOXELS:
        return np.zeros(3), f"{int(crop_mask.sum())} body voxels in the overlap", False
    reg = registration_method(config, threads, to_sitk(crop_mask.astype(np.uint8), crop.affine))
    reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.NONE)
    f_img, m_img = to_sitk(crop.array, crop.affine), to_sitk(moving.array, moving.affine)
    f = corners_mm(fixed.array.shape, fixed.affine) @ u
    overlap_mm = max(0.0, min(f.max(), t.max()) - max(f.min(), t.min()))
    reach = min(config.max_shift_mm, 0.5 * overlap_mm)
    result = run_registration(reg, _best_start(reg, f_img, m_img, u, reach), f_img, m_img)
    translation = np.asarray(result.GetParameters(), dtype=np.float64)[:3]
    stop = reg.GetOptimizerStopConditionDescription()
    if float(np.linalg.norm(translation)) > config.max_shift_mm:
        return np.zeros(3), f"rejected: |t| = {np.linalg.norm(translation):.1f} mm > max_shift_mm; {stop}", False
    return translation, stop, True


def _best_start(reg, fixed_image, moving_image, u: npt.NDArray, reach_mm: float):
    """The translation along ``u`` (steps of ``_SCAN_STEP_MM`` within ± ``reach_mm``) with the best metric.

    The overlap of two stations is short along the table, and anatomy that changes slowly along
    it (thighs, lower legs) gives the metric local minima a few mm apart along ``u``; the simplex,
    started from the scanner position, can stop in one (measured: 9 mm off on the synthetic
    cohort). Started from the best point of this scan, it refines the global one.
    """
    import SimpleITK as sitk

    best, best_value = sitk.TranslationTransform(3), np.inf
    for step in np.arange(-np.floor(reach_mm / _SCAN_STEP_MM), np.floor(reach_mm / _SCAN_STEP_MM) + 1):
        candidate = sitk.TranslationTransform(3, [float(v) for v in step * _SCAN_STEP_MM * u])
        reg.SetInitialTransform(candidate)
        value = reg.MetricEvaluate(fixed_image, moving_image)
        if value < best_value - 1e-12:
            best, best_value = candidate, value
    return best


def station_transform(whole, offset_mm: npt.ArrayLike, centre_mm: npt.ArrayLike):
    """A station's transform from the whole-body one and its offset in the chain.

    Parameters
    ----------
    whole : SimpleITK transform
        Fixed (T1) world → the centre station's frame (the whole-body registration).
    offset_mm : (3,) float
        The station's content relative to the centre station's frame (RAS+ mm).
    centre_mm : (3,) float
        The station's centre (world mm).

    Returns
    -------
    transform : SimpleITK transform
        ``x ↦ whole(x) + offset_mm`` (one translation when ``whole`` is one, else a composite).
    translation_mm : (3,) float
        Its displacement of ``centre_mm``.
    """
    import SimpleITK as sitk

    offset, centre = np.asarray(offset_mm, dtype=np.float64), np.asarray(centre_mm, dtype=np.float64)
    if isinstance(whole, sitk.TranslationTransform):
        transform = sitk.TranslationTransform(3, [float(a + b) for a, b in zip(whole.GetOffset(), offset)])
    else:  # a composite applies the last transform listed first
        transform = sitk.CompositeTransform([sitk.TranslationTransform(3, [float(v) for v in offset]), whole])
    moved = np.asarray(transform.TransformPoint([float(v) for v in centre]), dtype=np.float64)
    return transform, moved - centre


def register_chained(fixed: Volume, fixed_mask: npt.ArrayLike, stations: Sequence[Volume],
                     station_masks: Sequence[npt.ArrayLike], *, config: RegisterConfig = RegisterConfig(),
                     threads: int = 2) -> list[Registration]:
    """Chain the DWI stations to each other from the centre, then the whole-body DWI to the T1.

    Parameters
    ----------
    fixed : Volume
        Stitched T1 (the whole-body step's fixed image).
    fixed_mask : (X, Y, Z) bool
        Body mask of ``fixed``.
    stations : sequence of Volume
        The DWI stations' lowest b-value images, in any order (chained head → feet internally).
    station_masks : sequence of (X, Y, Z) bool
        Body mask of each station on its grid.
    config : RegisterConfig
        Optimiser and pyramid settings; ``transform`` applies to the whole-body step.
    threads : int
        Metric threads (fixed for reproducibility).

    Returns
    -------
    list of Registration
        One per station, in the order of ``stations``: transform fixed (T1) world → station world,
        ``translation_mm`` at the station centre; ``stop`` names the neighbour the station was
        chained to and the whole-body result; ``accepted`` is False when its pair or the
        whole-body step was rejected.
    """
    order = station_order(list(stations))
    vols = [stations[i] for i in order]
    masks = [np.asarray(station_masks[i], dtype=bool) for i in order]
    offsets = [np.zeros(3) for _ in vols]
    notes, ok = ["centre station of the chain"] * len(vols), [True] * len(vols)
    for k, j in chain_order(len(vols)):
        t, stop, accepted = register_pair(vols[j], masks[j], vols[k], config=config, threads=threads)
        offsets[k] = offsets[j] + t
        ok[k] = accepted
        notes[k] = f"chained to DWI station {j + 1} ({', '.join(f'{v:+.1f}' for v in t)} mm; {stop})"
    aligned = [_shifted(v, c) for v, c in zip(vols, offsets)]
    shape, affine = union_grid([(v.array.shape, v.affine) for v in aligned], reference=(len(aligned) - 1) // 2)
    whole = stitch(aligned, shape, affine)
    body = register_station(fixed, fixed_mask, Volume(whole.image, affine), config=config, threads=threads,
                            moving_mask=whole.coverage)
    out: list[Registration] = [None] * len(vols)  # type: ignore[list-item]
    for k, (v, c) in enumerate(zip(vols, offsets)):
        transform, translation = station_transform(body.transform, c, v.centre_mm)
        moved = tuple(float(x) for x in translation)
        out[order[k]] = Registration(transform, moved, body.rotation_deg,  # type: ignore[arg-type]
                                     body.metric, ok[k] and body.accepted, f"{notes[k]}; whole body: {body.stop}")
    return out

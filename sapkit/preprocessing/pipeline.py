"""Preprocess one scan: stations → ADC → N4 → station standardisation → stitching → DWI onto T1.

The order follows the authors' pipeline (Ceranka et al. 2023): ADC per DWI station (before
anything changes the signal ratio between b-values), N4 bias correction per station, inter-station
intensity standardisation, stitching of T1 onto the union of its stations, registration of every
DWI station to the stitched T1 and one resampling of b1000 (and ADC) onto the T1 grid; Dixon water
and fat images, when present, follow their in-phase T1 stations (:mod:`sapkit.preprocessing.dixon`). Each step
is a function of its own module with its settings in :class:`~sapkit.config.RawConfig`
and can be switched off. Conventions: arrays ``(X, Y, Z)`` in RAS+ voxel order, affines voxel →
world mm, stations numbered from the head end (1).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.config import RawConfig
from sapkit.errors import AcquisitionError, NiftiError, SapkitError
from sapkit.imaging.resample import resample
from sapkit.io.nifti import read_label, reorient_to_ras
from sapkit.preprocessing.acquisition import model_acquisition
from sapkit.preprocessing.adc import fit_adc
from sapkit.preprocessing.bias import body_mask, n4_field
from sapkit.preprocessing.convert import convert_dicom, read_nifti_station, snap_affine
from sapkit.preprocessing.dixon import DIXON_SEQUENCES, read_dixon, stitch_dixon
from sapkit.preprocessing.geometry import Volume, output_grid, output_spacing
from sapkit.preprocessing.isis import chain_factors, overlap_ratio, reference_station
from sapkit.preprocessing.register import Registration, identity_transform, register_station
from sapkit.preprocessing.station_registration import register_chained
from sapkit.preprocessing.stations import ScanSource, StationSource
from sapkit.preprocessing.stitch import station_order, stitch

__all__ = ["LoadedStation", "ProcessedScan", "load_scan", "load_labels", "preprocess_scan"]


@dataclass
class LoadedStation:
    """A station in memory: ``images`` (b-value or None → (X, Y, Z) float32) on ``affine`` (RAS+ mm),
    per-station ``labels`` on the same grid, its ``number`` (1 = head end), ``description`` and the
    station number the input gave it (``input_number``)."""

    number: int
    images: dict
    affine: npt.NDArray[np.float64]
    labels: dict = field(default_factory=dict)
    description: str = ""
    input_number: int = 0

    def volume(self, b_value: float | None = None) -> Volume:
        """The image at ``b_value`` (the lowest b-value, or the T1 image, when None)."""
        key = b_value if b_value in self.images else (None if None in self.images else min(self.images))
        return Volume(self.images[key], self.affine)


@dataclass(frozen=True)
class ProcessedScan:
    """One preprocessed scan on the stitched T1 grid.

    Attributes
    ----------
    t1, b1000 : (X, Y, Z) float32
        Channel 0 and 1 of the kit (b1000 = the acquired b-value nearest ``raw.b_value``).
    adc : (X, Y, Z) float32 or None
        ADC in mm²/s when ≥ 2 b-values were acquired and ``raw.write_adc``.
    affine : (4, 4) voxel → world (RAS+ mm) of the stitched grid.
    labels : dict name → (X, Y, Z) label map carried onto the grid.
    stations : DataFrame
        QC per station (N4 field range, standardisation factor, registration shift, …).
    summary : dict
        QC per scan (grid, b-values, seconds per step, warnings).
    extras : dict
        Intermediates for QC figures: ``t1_before`` (stitched without N4/standardisation),
        ``body_mask``, ``n4_fields`` (per T1 station, with its affine), ``station_z_mm`` (z range of
        each T1 station, mm).
    dixon : dict
        Dixon class (``water``, ``fat``) → (X, Y, Z) float32 on the grid, for each class carried.
    """

    t1: npt.NDArray[np.float32]
    b1000: npt.NDArray[np.float32]
    adc: npt.NDArray[np.float32] | None
    affine: npt.NDArray[np.float64]
    labels: dict
    stations: pd.DataFrame
    summary: dict
    extras: dict
    dixon: dict = field(default_factory=dict)


def _read(station: StationSource, b: float | None, files: tuple[str, ...], scan_id: str, converter: str):
    what = f"scan {scan_id} {station.sequence} station {station.station}" + (f" b={b:g}" if b is not None else "")
    if station.kind == "nifti":
        return read_nifti_station(files[0])
    return convert_dicom(files, converter=converter, what=what, b_value=b)


def _read_label(path: str, shape, affine, what: str) -> npt.NDArray:
    data, aff, _ = read_label(path, what=what)
    data, aff = reorient_to_ras(data, aff)
    aff = snap_affine(aff)
    if shape is not None and (data.shape != tuple(shape) or np.abs(aff - affine).max() > 1e-3):
        raise NiftiError(f"{what} {path} has shape {data.shape} and affine origin {aff[:3, 3].round(2).tolist()}, not the "
                         f"station's grid {tuple(shape)} / {affine[:3, 3].round(2).tolist()}; give per-station labels on "
                         "the T1 station grid, or one whole-body label for all T1 rows")
    return data.astype(np.uint8) if data.min() >= 0 and data.max() < 256 else data


def load_scan(source: ScanSource, *, converter: str = "dcm2niix", labels: bool = True
              ) -> tuple[list[LoadedStation], list[LoadedStation], dict[str, tuple[npt.NDArray, npt.NDArray]]]:
    """Read (or convert) every station of a scan, ordered head → feet, with its labels
    (``labels=False``: without; :func:`load_labels` reads them later).

    Returns
    -------
    t1, dwi : lists of LoadedStation (numbered 1 = head end)
    whole_labels : dict name → (label map, affine) of whole-body labels

    Raises
    ------
    SapkitError
        A problem recorded while sorting, an unreadable file, DWI b-values on different grids, or a
        per-station label not on its station's grid.
    """
    if source.problems:
        raise SapkitError("; ".join(source.problems))
    t1, dwi = [], []
    for st in (st for st in source.stations if st.sequence not in DIXON_SEQUENCES):  # Dixon: read_dixon
        images, affine = {}, None
        for b, files in st.images:
            data, aff = _read(st, b, files, source.scan_id, converter)
            if affine is not None and (data.shape != next(iter(images.values())).shape or np.abs(aff - affine).max() > 1e-3):
                raise NiftiError(f"scan {source.scan_id} DWI station {st.station}: b={b:g} is on another grid than the "
                                 "other b-values; the b-values of one station must share one grid")
            images[b], affine = data, aff
        (t1 if st.sequence == "t1" else dwi).append(LoadedStation(st.station, images, affine, {}, st.description,
                                                                  st.station))
    out = []
    for stations in (t1, dwi):
        ordered = [stations[i] for i in station_order([s.volume() for s in stations])] if stations else []
        for k, s in enumerate(ordered):
            s.number = k + 1
        out.append(ordered)
    return out[0], out[1], (load_labels(source, out[0]) if labels else {})


def load_labels(source: ScanSource, t1: list[LoadedStation]) -> dict[str, tuple[npt.NDArray, npt.NDArray]]:
    """Read the per-station labels into ``t1`` (in place) and return the whole-body labels (name → (map, affine)).

    Raises
    ------
    SapkitError
        A label file that cannot be read, or a per-station label not on its station's grid.
    """
    by_number = {s.input_number: s for s in t1}
    for st in source.stations:
        if st.sequence == "t1" and st.station in by_number:
            s = by_number[st.station]
            s.labels = {name: _read_label(path, s.images[None].shape, s.affine, f"{name} of T1 station {st.station}")
                        for name, path in st.labels}
    whole = {}
    for name, path in source.labels:
        data, aff, _ = read_label(path, what=name)
        data, aff = reorient_to_ras(data, aff)
        whole[name] = (data, snap_affine(aff))
    return whole


def _b1000_key(dwi: list[LoadedStation], config: RawConfig) -> float:
    common = set.intersection(*[{b for b in s.images} for s in dwi])
    near = [b for b in common if abs(b - config.b_value) <= config.b_tolerance]
    if not near:
        found = sorted({b for s in dwi for b in s.images})
        raise SapkitError(f"no b-value within {config.b_tolerance:g} of {config.b_value:g} s/mm² in every DWI station "
                          f"(found {found}); set raw.b_value / raw.b_tolerance")
    return min(near, key=lambda b: abs(b - config.b_value))


def _standardise(stations: list[LoadedStation], masks: list, config: RawConfig) -> tuple[list[float], list, list[str]]:
    """Chained overlap factors (applied in place to every image of every station)."""
    warnings = []
    ratios, counts = [], []
    for a, b, ma, mb in zip(stations[:-1], stations[1:], masks[:-1], masks[1:]):
        ratio, n = overlap_ratio(a.volume(), ma, b.volume(), mb, min_overlap_voxels=config.standardise.min_overlap_voxels)
        if not np.isfinite(ratio):
            warnings.append(f"stations {a.number}/{b.number}: {n} joint body voxels in the overlap; factor 1 kept")
        ratios.append(ratio)
        counts.append(n)
    ref = reference_station(config.standardise.reference, [int(m.sum()) for m in masks])
    factors = chain_factors(ratios, ref)
    for s, f in zip(stations, factors):
        for b in s.images:
            s.images[b] = (s.images[b] * np.float32(f)).astype(np.float32)
    return factors, list(zip(ratios + [float("nan")], counts + [0])), warnings


def _n4(stations: list[LoadedStation], masks: list, config: RawConfig,
        reference_spacing: tuple[float, float, float]) -> list[npt.NDArray[np.float32]]:
    """N4 per station; the fit runs on voxels of ``shrink_factor`` × the T1 spacing (DWI: coarser grid,
    less shrinking). The field of the lowest b-value is applied to every b-value of the station."""
    fields = []
    n4 = config.n4
    for s, m in zip(stations, masks):
        shrink = [max(1, int(round(n4.shrink_factor * r / v))) for r, v in zip(reference_spacing, s.volume().spacing_mm)]
        f = n4_field(s.volume().array, s.affine, m, shrink_factor=shrink, iterations=n4.iterations,
                     convergence_threshold=n4.convergence_threshold, spline_distance_mm=n4.spline_distance_mm,
                     threads=config.threads)
        for b in s.images:
            s.images[b] = (s.images[b] / f).astype(np.float32)
        fields.append(f)
    return fields


def _station_rows(scan_id: str, sequence: str, stations, masks, fields, factors, ratios, regs) -> list[dict]:
    rows = []
    for k, s in enumerate(stations):
        f, reg = (fields[k] if fields else None), (regs[k] if regs else None)
        vol = s.volume()
        rows.append({
            "scan_id": scan_id, "sequence": sequence, "station": s.number, "description": s.description,
            "shape": "x".join(map(str, vol.array.shape)), "spacing_mm": " ".join(f"{v:.3g}" for v in vol.spacing_mm),
            "b_values": " ".join(f"{b:g}" for b in s.images if b is not None), "body_voxels": int(masks[k].sum()),
            "n4_field_min": float(f[masks[k]].min()) if f is not None and masks[k].any() else np.nan,
            "n4_field_max": float(f[masks[k]].max()) if f is not None and masks[k].any() else np.nan,
            "ratio_to_next": ratios[k][0] if ratios else np.nan, "overlap_voxels": ratios[k][1] if ratios else 0,
            "isis_factor": factors[k] if factors else 1.0,
            "shift_x_mm": reg.translation_mm[0] if reg else np.nan, "shift_y_mm": reg.translation_mm[1] if reg else np.nan,
            "shift_z_mm": reg.translation_mm[2] if reg else np.nan, "shift_mm": reg.shift_mm if reg else np.nan,
            "rotation_deg": float(np.abs(reg.rotation_deg).max()) if reg else np.nan,
            "registration_metric": reg.metric if reg else np.nan,
            "registration_accepted": bool(reg.accepted) if reg else None, "registration_stop": reg.stop if reg else "",
        })
    return rows


def _lesion_volumes(labels: dict, affine: npt.NDArray, whole: dict) -> dict[str, float]:
    """Lesion volume (mL) on the output grid and, for a whole-body lesion label, in the label as given."""
    def ml(data, aff) -> float:
        return float(np.count_nonzero(data) * abs(np.linalg.det(aff[:3, :3])) / 1000.0)

    out = {"lesion_ml": ml(labels["lesion_label"], affine) if "lesion_label" in labels else float("nan")}
    out["lesion_ml_source"] = ml(*whole["lesion_label"]) if "lesion_label" in whole else float("nan")
    return out


@contextlib.contextmanager
def _sitk_threads(n: int):
    """SimpleITK's default thread count set to ``n`` for the block (N4 and registration results
    depend slightly on it, so every run uses ``raw.threads`` whatever the machine or ``jobs``)."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(n))
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def preprocess_scan(source: ScanSource, config: RawConfig = RawConfig()) -> ProcessedScan:
    """Run every enabled step on one scan (see the module docstring for the order).

    Parameters
    ----------
    source : ScanSource
        The scan's stations and labels (from a stations CSV or a DICOM tree).
    config : RawConfig
        Step settings (profile section ``raw``).

    Returns
    -------
    ProcessedScan

    Raises
    ------
    SapkitError
        Unreadable or inconsistent input (the message names the file or station and the fix).
    """
    with _sitk_threads(config.threads):
        return _preprocess(source, config)


def _preprocess(source: ScanSource, config: RawConfig) -> ProcessedScan:
    clock, timings, warnings = time.perf_counter(), {}, []

    def tick(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = round(now - clock, 3)
        clock = now

    t1, dwi, _ = load_scan(source, converter=config.converter, labels=False)
    tick("load")
    acquisition = model_acquisition(t1, dwi)  # before the labels: a split station would misplace them
    defects = [d.message for d in acquisition.defects]
    if defects and config.on_incomplete == "fail":
        raise AcquisitionError(f"{'; '.join(defects)} (scan {source.scan_id}; raw.on_incomplete=warn or keep "
                               "preprocesses it as acquired)", acquisition.status)
    whole = load_labels(source, t1)
    dixon_found = read_dixon(source, config.converter)  # class → stations; {} without Dixon
    if config.on_incomplete == "warn":
        warnings += defects
    b_key = _b1000_key(dwi, config)
    tick("acquisition")
    t1_masks = [body_mask(s.volume().array) for s in t1]
    dwi_masks = [body_mask(s.volume().array) for s in dwi]
    adcs = [fit_adc({b: v for b, v in s.images.items()}) for s in dwi] \
        if config.write_adc and all(len(s.images) >= 2 for s in dwi) else None
    spacing, grid_rule = output_spacing([s.volume() for s in t1], config.spacing)
    shape, affine = output_grid([s.volume() for s in t1], spacing)
    before = stitch([s.volume() for s in t1], shape, affine, blend=config.stitch.blend).image
    tick("masks_adc")
    t1_fields = _n4(t1, t1_masks, config, spacing) if config.n4.enabled else []
    dwi_fields = _n4(dwi, dwi_masks, config, spacing) if config.n4.enabled and config.n4.dwi else []
    tick("n4")
    t1_factors, t1_ratios, dwi_factors, dwi_ratios = [], [], [], []
    if config.standardise.enabled:
        t1_factors, t1_ratios, w1 = _standardise(t1, t1_masks, config)
        dwi_factors, dwi_ratios, w2 = _standardise(dwi, dwi_masks, config)
        warnings += [f"T1 {w}" for w in w1] + [f"DWI {w}" for w in w2]
    tick("standardise")
    t1_out = stitch([s.volume() for s in t1], shape, affine, blend=config.stitch.blend, labels=[s.labels for s in t1])
    labels = dict(t1_out.labels)
    for name, (data, aff) in whole.items():
        labels[name] = resample(data, aff, shape, affine, nearest=True)
    mask = body_mask(t1_out.image)
    dixon, dixon_notes = stitch_dixon(dixon_found, [s.volume() for s in t1], [s.number for s in t1], t1_fields,
                                      t1_factors, shape, affine, blend=config.stitch.blend)
    warnings += [n for n in dixon_notes if n not in DIXON_SEQUENCES]
    tick("stitch")
    regs: list[Registration] = []
    chained = config.register.enabled and config.register.dwi_stations == "chained"  # DWI stations to each other first
    chain = register_chained(Volume(t1_out.image, affine), mask, [s.volume() for s in dwi], dwi_masks,
                             config=config.register, threads=config.threads) if chained else []
    for k, s in enumerate(dwi):
        if config.register.enabled:
            regs.append(chain[k] if chained else register_station(Volume(t1_out.image, affine), mask, s.volume(),
                                                                  config=config.register, threads=config.threads))
            if not regs[-1].accepted:
                warnings.append(f"DWI station {s.number}: registration {regs[-1].stop}")
        else:
            regs.append(Registration(identity_transform(), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), float("nan"), True, "disabled"))
    tick("register")
    transforms = [r.transform for r in regs]
    b1000 = stitch([s.volume(b_key) for s in dwi], shape, affine, transforms=transforms, blend=config.stitch.blend)
    adc = stitch([Volume(a, s.affine) for a, s in zip(adcs, dwi)], shape, affine, transforms=transforms,
                 blend=config.stitch.blend).image if adcs is not None else None
    coverage = float(b1000.coverage[mask].mean()) if mask.any() else 0.0
    if coverage < 0.95:
        warnings.append(f"DWI covers only {coverage:.0%} of the body on the T1 grid")
    tick("resample_dwi")
    rows = _station_rows(source.scan_id, "t1", t1, t1_masks, t1_fields, t1_factors, t1_ratios, None) + \
        _station_rows(source.scan_id, "dwi", dwi, dwi_masks, dwi_fields, dwi_factors, dwi_ratios, regs)
    summary: dict[str, Any] = {
        "scan_id": source.scan_id, "subject_id": source.subject_id, "site": source.site, "cohort": source.cohort,
        "n_t1_stations": len(t1), "n_dwi_stations": len(dwi),
        "b_values": " ".join(f"{b:g}" for b in sorted({b for s in dwi for b in s.images})), "b1000_used": b_key,
        "shape": "x".join(map(str, shape)), "spacing_mm": " ".join(f"{v:.3g}" for v in Volume(before, affine).spacing_mm),
        "dwi_body_coverage": round(coverage, 4), "max_shift_mm": max((r.shift_mm for r in regs), default=0.0),
        "seconds": timings, "warnings": warnings, "grid_rule": grid_rule,
        "status": "warned" if defects and config.on_incomplete == "warn" else "ok",
        "acquisition": "; ".join(defects) or "ok", **_lesion_volumes(labels, affine, whole),
        **({"dixon": "; ".join(dixon_notes)} if dixon_found else {}),
    }
    z_ranges = [tuple(np.sort((s.affine @ np.array([[0, 0, 0, 1], [0, 0, s.volume().array.shape[2] - 1, 1]]).T)[2]))
                for s in t1]
    extras = {"t1_before": before, "body_mask": mask, "n4_fields": [(f, s.affine) for f, s in zip(t1_fields, t1)],
              "station_z_mm": z_ranges}
    return ProcessedScan(t1_out.image, b1000.image, adc, affine, labels, pd.DataFrame(rows), summary, extras, dixon)

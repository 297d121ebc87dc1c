"""Synthetic raw acquisitions: the phantom as a scanner delivers it, with the truth kept to score.

Each scan of the synthetic cohort (same subjects, poses and lesions as
:func:`sapkit.data.phantom.generate_cohorts`) is rendered noise- and bias-free on the cohort grid
— the *truth* — and then acquired as 4–8 overlapping stations per sequence:

- **T1** stations are slabs of the truth grid, each multiplied by its own smooth bias field and
  scale (neighbours differ by 25–60 % by default) plus Rician noise;
- **DWI** stations (b-values ``raw.synth.b_values``; ``S(b) = S1000 · exp((1000 − b) · ADC)``
  with a per-tissue ADC) lie on a coarser grid (in-plane × ``dwi_inplane_factor``, slices ×
  ``dwi_slice_factor``), their content shifted by a known per-station vector of 2–8 mm, again
  with their own bias, scale and noise.

Both input forms are written from the same quantised values (12-bit, ``RescaleSlope``), so they
hold identical data: ``dicom/<patient>/<study>/<series>/IM*.dcm`` (realistic tags, vendor-specific
b-value tags cycling over the scans, a localizer series per study) with ``labels.csv``, and
``nifti/<scan_id>/*.nii.gz`` with ``stations.csv``. Per-station label maps (skeleton, fine atlas,
lesions) sit in ``labels/``; the truth in ``truth/`` (``<scan_id>_{t1,b1000,adc,tissue,skeleton,
fine,lesion}.nii.gz`` on the cohort grid and ``stations.csv`` with every station's scale, bias
strength and DWI shift).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage

from sapkit.config import RawConfig, RawSynthConfig, SynthConfig, check_raw_config
from sapkit.data.phantom._anatomy import Tissue, body_parts
from sapkit.data.phantom._cohort import SynthScan, make_grid, make_scan, make_subject
from sapkit.data.phantom._contrast import Site, make_sites
from sapkit.data.phantom._render import render_body
from sapkit.data.phantom._shapes import Grid
from sapkit.data.phantom.dicom_writer import VENDOR_STYLES, SeriesTags, quantise, rescale_slope, write_dicom_series
from sapkit.errors import ConfigError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.nifti import save_nifti
from sapkit.jobs.progress import progress_bar

__all__ = ["TISSUE_ADC", "RawStation", "RawScan", "make_raw_scan", "generate_raw_cohort", "is_raw_generated"]

#: Apparent diffusion coefficient per tissue (mm²/s; index = ``Tissue`` value); fat is suppressed.
TISSUE_ADC = np.zeros(len(Tissue), np.float32)
for _t, _adc in {Tissue.FAT: 0.2e-3, Tissue.MUSCLE: 1.4e-3, Tissue.LUNG: 1.0e-3, Tissue.LIVER: 1.1e-3,
                 Tissue.SPLEEN: 0.8e-3, Tissue.KIDNEY: 1.9e-3, Tissue.BLADDER: 2.8e-3, Tissue.HEART: 1.5e-3,
                 Tissue.CORD: 1.0e-3, Tissue.CSF: 3.0e-3, Tissue.DISC: 1.6e-3, Tissue.MARROW: 0.4e-3,
                 Tissue.CORTEX: 0.3e-3, Tissue.NODE: 0.9e-3, Tissue.LESION: 1.0e-3, Tissue.BOWEL: 1.5e-3,
                 Tissue.VESSEL: 2.0e-3, Tissue.PROSTATE: 1.3e-3}.items():
    TISSUE_ADC[_t] = _adc
_CLEAN = Site("truth", 1.0, 1.0, 0.0, 0.0, 0.0)
_COHORT_CODE = {"healthy": 1, "patient": 2}
_LABELS = ("skeleton_label", "fine_label", "lesion_label")


@dataclass(frozen=True)
class RawStation:
    """One acquired station: ``images`` (b-value → (X, Y, Z) float32; key None for T1) on ``affine``,
    its ``scale``, bias ``field_range`` (min, max), DWI ``shift_mm`` (content displacement, RAS+ mm)
    and, for T1, the truth ``slab`` (z slice range of the cohort grid) it covers."""

    sequence: str
    number: int
    images: dict
    affine: npt.NDArray[np.float64]
    scale: float
    field_range: tuple[float, float]
    shift_mm: tuple[float, float, float]
    slab: tuple[int, int]


@dataclass(frozen=True)
class RawScan:
    """A scan's truth (``scan``: clean T1/b1000 and labels, ``tissue``, ``adc``) and its stations."""

    scan: SynthScan
    tissue: npt.NDArray[np.uint8]
    adc: npt.NDArray[np.float32]
    t1: list[RawStation]
    dwi: list[RawStation]
    vendor: str


def _bias(shape, rng: np.random.Generator, strength: float) -> npt.NDArray[np.float32]:
    """exp of a random quadratic in the station's normalised coordinates, |log field| ≤ ``strength``."""
    axes = [np.linspace(-1, 1, n).reshape([-1 if d == i else 1 for d in range(3)]) for i, n in enumerate(shape)]
    x, y, z = axes
    c = rng.normal(size=7)
    c /= np.abs(c).sum()
    poly = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * z * z + c[6] * x * z
    return np.exp(strength * poly).astype(np.float32)


def _scales(rng: np.random.Generator, n: int, step: tuple[float, float]) -> list[float]:
    """Station scales whose neighbours differ by a factor in ``step``, kept within [0.5, 2]."""
    logs = [float(rng.uniform(np.log(0.8), np.log(1.25)))]
    for _ in range(n - 1):
        d = float(rng.uniform(np.log(step[0]), np.log(step[1]))) * (1 if rng.random() < 0.5 else -1)
        if abs(logs[-1] + d) > np.log(2.0):
            d = -d
        logs.append(logs[-1] + d)
    return [float(np.exp(v)) for v in logs]


def _rician(signal: npt.NDArray, sd: float, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Magnitude of the signal plus complex Gaussian noise of sd ``sd`` (draws even when sd = 0)."""
    n1, n2 = rng.standard_normal(signal.shape), rng.standard_normal(signal.shape)
    return np.sqrt((signal + sd * n1) ** 2 + (sd * n2) ** 2).astype(np.float32)


def _slabs(n_z: int, n: int, overlap: int) -> list[tuple[int, int]]:
    """``n`` equal slabs (start, stop) of ``n_z`` slices overlapping by ~``overlap``, feet first."""
    length = int(np.ceil((n_z + (n - 1) * overlap) / n))
    if length >= n_z or length <= overlap:
        raise ConfigError(f"cannot cut {n_z} slices into raw.synth.n_stations = {n} stations overlapping by {overlap} "
                          "slices; use fewer stations or a smaller raw.synth.overlap_mm")
    starts = [int(round(k * (n_z - length) / (n - 1))) for k in range(n)]
    return [(s, s + length) for s in starts]


def _dwi_grid(grid: Grid, slab: tuple[int, int], raw: RawSynthConfig) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """Affine of a DWI station: coarser grid centred on the T1 station (origins rounded to 0.01 mm)."""
    s = grid.spacing_mm
    sd = np.array([s * raw.dwi_inplane_factor] * 2 + [s * raw.dwi_slice_factor])
    n_xy = [max(2, int(round(n / raw.dwi_inplane_factor))) for n in grid.shape[:2]]
    z0 = grid.origin_mm[2] + slab[0] * s
    z1 = grid.origin_mm[2] + (slab[1] - 1) * s
    n_z = max(2, int(np.floor((z1 - z0) / sd[2] + 1e-6)) + 1)
    centre = np.array([grid.origin_mm[0] + (grid.shape[0] - 1) / 2 * s, grid.origin_mm[1] + (grid.shape[1] - 1) / 2 * s,
                       (z0 + z1) / 2])
    affine = np.diag(np.r_[sd, 1.0])
    affine[:3, 3] = np.round(centre - (np.array(n_xy + [n_z]) - 1) / 2 * sd, 2)
    return affine, (n_xy[0], n_xy[1], n_z)


def _sample(truth: npt.NDArray, grid: Grid, affine: npt.NDArray, shape, shift: npt.NDArray) -> npt.NDArray[np.float32]:
    """Truth (prefiltered) sampled at the station's voxel centres displaced by ``-shift`` (linear)."""
    idx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    coords = [(affine[d, d] * idx[d] + affine[d, 3] - shift[d] - grid.origin_mm[d]) / grid.spacing_mm for d in range(3)]
    return ndimage.map_coordinates(truth, coords, order=1, mode="constant", cval=0.0).astype(np.float32)


def make_raw_scan(subject, grid: Grid, *, scan_index: int, site: Site, config: SynthConfig, raw: RawSynthConfig,
                  vendor: str = "standard") -> RawScan:
    """Render one scan's truth and acquire it as T1 and DWI stations (deterministic in the seeds).

    ``site`` only names the scan (its intensity effects are replaced by the station effects).
    """
    scan = make_scan(subject, grid, scan_index=scan_index, site=_CLEAN, config=config)
    scan = dataclasses.replace(scan, site=site.name)
    tissue, _, _ = render_body(body_parts(subject.params), subject.params, scan.pose, grid,
                               cortex_id=int(Tissue.CORTEX), marrow_id=int(Tissue.MARROW))
    tissue[scan.lesion_label > 0] = Tissue.LESION
    adc = ndimage.gaussian_filter(TISSUE_ADC[tissue], 0.5, truncate=3.0)
    rng = np.random.default_rng([subject.seed, _COHORT_CODE[subject.cohort], subject.index, 100 + scan_index])
    n = raw.n_stations
    slabs = _slabs(grid.shape[2], n, max(1, int(round(raw.overlap_mm / grid.spacing_mm))))
    t1_scales, dwi_scales = _scales(rng, n, raw.scale_step), _scales(rng, n, raw.scale_step)
    factors = np.array([raw.dwi_inplane_factor] * 2 + [raw.dwi_slice_factor])
    sigma = 0.42 * np.sqrt(np.maximum(factors ** 2 - 1, 0))
    b_truth = {b: ndimage.gaussian_filter(scan.image[1] * np.exp((1000.0 - b) * adc), sigma) for b in raw.b_values}
    t1_stations, dwi_stations = [], []
    for k, slab in enumerate(slabs):
        number = n - k  # station 1 is the head end
        affine = grid.affine.copy()
        affine[2, 3] += slab[0] * grid.spacing_mm
        field = _bias((grid.shape[0], grid.shape[1], slab[1] - slab[0]), rng, raw.bias_strength)
        signal = scan.image[0][:, :, slab[0]:slab[1]] * field * t1_scales[k]
        t1_stations.append(RawStation("t1", number, {None: _rician(signal, raw.t1_noise * t1_scales[k], rng)}, affine,
                                      t1_scales[k], (float(field.min()), float(field.max())), (0.0, 0.0, 0.0), slab))
        d_affine, d_shape = _dwi_grid(grid, slab, raw)
        direction = rng.normal(size=3) * np.array([0.5, 1.0, 1.0])
        shift = direction / np.linalg.norm(direction) * rng.uniform(*raw.shift_mm)
        d_field = _bias(d_shape, rng, raw.bias_strength)
        images = {float(b): _rician(_sample(b_truth[b], grid, d_affine, d_shape, shift) * d_field * dwi_scales[k],
                                    raw.dwi_noise * dwi_scales[k], rng) for b in raw.b_values}
        dwi_stations.append(RawStation("dwi", number, images, d_affine, dwi_scales[k],
                                       (float(d_field.min()), float(d_field.max())), tuple(float(v) for v in shift), slab))
    return RawScan(scan, tissue, adc.astype(np.float32), t1_stations[::-1], dwi_stations[::-1], vendor)


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _write_dicom(raw_scan: RawScan, folder: Path, *, seed: int, study_date: str, quantised: dict) -> None:
    scan = raw_scan.scan
    study, frame = _uid(seed, scan.scan_id, "study"), _uid(seed, scan.scan_id, "frame")

    def tags(number: int, description: str, image_type: tuple[str, ...], tr: float, te: float) -> SeriesTags:
        return SeriesTags(scan.subject_id, study, _uid(seed, scan.scan_id, "series", number), frame, number, description,
                          image_type, study_date, "090000", f"0900{number:02d}", scan.site, tr, te)

    grid_affine = scan.grid.affine
    centre = scan.grid.shape[2] // 2
    loc_affine = grid_affine @ np.diag([4.0, 4.0, 1.0, 1.0])
    loc_affine[2, 3] += (centre - 1) * scan.grid.spacing_mm
    localizer = scan.image[0][::4, ::4, centre - 1:centre + 2]
    write_dicom_series({None: localizer}, loc_affine, folder / "001_localizer",
                       tags=tags(1, "localizer", ("ORIGINAL", "PRIMARY", "LOCALIZER"), 8.0, 4.0))
    number = 2
    for st in raw_scan.t1:
        write_dicom_series({None: quantised[("t1", st.number, None)]}, st.affine, folder / f"{number:03d}_WB_T1_st{st.number}",
                           tags=tags(number, f"WB T1 tse station {st.number}", ("ORIGINAL", "PRIMARY", "M", "ND"), 600.0, 10.0))
        number += 1
    for st in raw_scan.dwi:
        bs = "_".join(f"b{b:g}" for b in st.images)
        write_dicom_series({b: quantised[("dwi", st.number, b)] for b in st.images}, st.affine,
                           folder / f"{number:03d}_WB_DWI_{bs}_st{st.number}",
                           tags=tags(number, f"WB ep2d_diff {bs.replace('_', ' ')} station {st.number}",
                                     ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"), 5000.0, 70.0), vendor=raw_scan.vendor)
        number += 1


def _write_raw_scan(raw_scan: RawScan, out: Path, forms: tuple[str, ...], *, seed: int, study_date: str) -> tuple[list, list, list]:
    scan = raw_scan.scan
    sid = scan.scan_id
    quantised, slopes = {}, {}
    for st in raw_scan.t1 + raw_scan.dwi:
        slope = slopes[(st.sequence, st.number)] = rescale_slope(list(st.images.values()))
        for b, image in st.images.items():
            quantised[(st.sequence, st.number, b)] = quantise(image, slope)
    label_rows, station_rows, truth_rows = [], [], []
    maps = {"skeleton_label": scan.skeleton_label, "fine_label": scan.fine_label, "lesion_label": scan.lesion_label}
    for st in raw_scan.t1:
        row = {"scan_id": sid, "station": st.number}
        for name in _LABELS:
            if name == "lesion_label" and scan.cohort != "patient":
                row[name] = ""
                continue
            row[name] = f"labels/{sid}/{name.replace('_label', '')}_st{st.number}.nii.gz"
            save_nifti(maps[name][:, :, st.slab[0]:st.slab[1]], st.affine, out / row[name], dtype=np.uint8)
        label_rows.append(row)
    for st in raw_scan.t1 + raw_scan.dwi:
        truth_rows.append({"scan_id": sid, "sequence": st.sequence, "station": st.number, "scale": st.scale,
                           "field_min": st.field_range[0], "field_max": st.field_range[1], "shift_x_mm": st.shift_mm[0],
                           "shift_y_mm": st.shift_mm[1], "shift_z_mm": st.shift_mm[2], "slab_start": st.slab[0],
                           "slab_stop": st.slab[1], "vendor": raw_scan.vendor})
        if "nifti" not in forms:
            continue
        for b in st.images:
            name = f"t1_st{st.number}" if b is None else f"dwi_b{b:g}_st{st.number}"
            path = f"nifti/{sid}/{name}.nii.gz"
            _save_scaled(quantised[(st.sequence, st.number, b)], st.affine, slopes[(st.sequence, st.number)], out / path)
            labels = next(r for r in label_rows if r["station"] == st.number) if b is None else {}
            station_rows.append({"subject_id": scan.subject_id, "scan_id": sid, "site": scan.site, "cohort": scan.cohort,
                                 "sequence": st.sequence, "b_value": "" if b is None else f"{b:g}", "station": st.number,
                                 "path": path, **{n: labels.get(n, "") for n in _LABELS}})
    if "dicom" in forms:
        _write_dicom(raw_scan, out / "dicom" / scan.subject_id / f"{study_date}_{sid}", seed=seed,
                     study_date=study_date, quantised=quantised)
    truth = {"t1": (scan.image[0], np.float32), "b1000": (scan.image[1], np.float32), "adc": (raw_scan.adc, np.float32),
             "tissue": (raw_scan.tissue, np.uint8), "skeleton": (scan.skeleton_label, np.uint8),
             "fine": (scan.fine_label, np.uint8), "lesion": (scan.lesion_label, np.uint8)}
    for key, (array, dtype) in truth.items():
        save_nifti(array, scan.affine, out / "truth" / f"{sid}_{key}.nii.gz", dtype=dtype)
    return station_rows, label_rows, truth_rows


def _save_scaled(values: npt.NDArray, affine: npt.NDArray, slope: str, path: Path) -> None:
    """A station as a scanner export converts it: 16-bit integers with ``scl_slope`` (what dcm2niix writes)."""
    import nibabel as nib

    units = nib.Nifti1Header()
    units.set_xyzt_units("mm", "sec")  # codes 0 here: save_nifti writes 1 ("scanner") for both
    stored = np.rint(values.astype(np.float64) / float(slope)).astype(np.int16)
    save_nifti(stored, affine, path, header=units, slope=float(slope))


def _record(config: SynthConfig, raw: RawSynthConfig, forms: tuple[str, ...]) -> str:
    return json.dumps({"synth": dataclasses.asdict(config), "raw": dataclasses.asdict(raw), "forms": list(forms)},
                      sort_keys=True, indent=1)


def is_raw_generated(out_dir: str | Path, config: SynthConfig, raw: RawSynthConfig,
                     forms: tuple[str, ...] = ("dicom", "nifti")) -> bool:
    """True when ``out_dir`` holds a complete raw cohort generated with exactly these settings."""
    record = Path(out_dir) / "raw_config.json"
    return record.is_file() and record.read_text() == _record(config, raw, tuple(forms))


def generate_raw_cohort(out_dir: str | Path, config: SynthConfig, raw: RawSynthConfig = RawSynthConfig(), *,
                        forms: tuple[str, ...] = ("dicom", "nifti"), progress: bool = True) -> Path:
    """Write the synthetic cohort as raw multi-station acquisitions (DICOM and/or NIfTI) with its truth.

    Same subjects, scans, sites and lesions as :func:`sapkit.data.phantom.generate_cohorts` with
    ``config``; vendors of the DICOM b-value tags cycle over the scans (standard, Siemens, GE,
    Philips). Same settings → identical files. ``raw_config.json`` is written last.

    Parameters
    ----------
    out_dir : path
        Destination (created): ``dicom/``, ``nifti/`` + ``stations.csv``, ``labels/`` + ``labels.csv``,
        ``truth/``, ``raw_config.json``.
    config : SynthConfig
        Cohort sizes, grid spacing, seed.
    raw : RawSynthConfig
        Stations, DWI grid, b-values, shifts, bias, scales, noise.
    forms : tuple of str
        ``dicom`` and/or ``nifti``.

    Returns
    -------
    Path
        ``out_dir``.
    """
    from datetime import date, timedelta

    check_raw_config(RawConfig(synth=raw))
    bad = sorted(set(forms) - {"dicom", "nifti"})
    if bad or not forms:
        raise ValueError(f"forms must be a non-empty subset of ('dicom', 'nifti'), got {forms}")
    out = Path(out_dir)
    grid = make_grid(config)
    sites = make_sites(config.n_sites, seed=config.seed)
    jobs = [("healthy", i, k, sites[(i + k) % len(sites)]) for i in range(config.n_healthy_subjects)
            for k in range(config.scans_per_subject)]
    jobs += [("patient", i, 0, sites[0]) for i in range(config.n_patients)]
    stations, labels, truth = [], [], []
    for j, (cohort, i, k, site) in enumerate(progress_bar(jobs, desc="raw scans", disable=not progress)):
        subject = make_subject(config, cohort=cohort, index=i)
        raw_scan = make_raw_scan(subject, grid, scan_index=k, site=site, config=config, raw=raw,
                                 vendor=VENDOR_STYLES[j % len(VENDOR_STYLES)])
        day = (date(2024, 1, 8) + timedelta(days=7 * j + 30 * k)).strftime("%Y%m%d")
        rows = _write_raw_scan(raw_scan, out, tuple(forms), seed=config.seed, study_date=day)
        stations += rows[0]
        labels += rows[1]
        truth += rows[2]
    if "nifti" in forms:
        atomic_write_text(out / "stations.csv", pd.DataFrame(stations).to_csv(index=False))
    atomic_write_text(out / "labels.csv", pd.DataFrame(labels).to_csv(index=False))
    atomic_write_text(out / "truth" / "stations.csv", pd.DataFrame(truth).to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "raw_config.json", _record(config, raw, tuple(forms)))
    return out

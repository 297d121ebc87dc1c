"""The profile section ``raw``: settings of ``sapkit preprocess`` and of the synthetic raw cohort.

Re-exported by :mod:`sapkit.config` (import them from there, like every other section); this
private module only keeps ``config.py`` short.

Every step of the raw-scan pipeline is a function with its parameters here and can be switched
off (``raw.n4.enabled=false`` …). Lengths are in mm, intensities in scanner units, b-values in
s/mm². Fields declare their choices (``Literal``) and ranges (``bounded``) like every section of
:mod:`sapkit.config`, so the profile loader checks them; :func:`check_raw_config` adds the checks
that involve several fields (pyramid lengths, percentile order).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from sapkit._config_loader import bounded, build, to_plain_dict
from sapkit.errors import ConfigError

__all__ = ["N4Config", "StandardiseConfig", "StitchConfig", "RegisterConfig", "NyulConfig", "RawSynthConfig",
           "RawConfig", "check_raw_config", "CONVERTERS", "Converter"]

Converter = Literal["dcm2niix", "simpleitk"]
#: DICOM → NIfTI converters ``raw.converter`` may name.
CONVERTERS: tuple[str, ...] = typing.get_args(Converter)


@dataclass(frozen=True)
class N4Config:
    """N4 bias-field correction (SimpleITK) inside a body mask, per station.

    ``shrink_factor`` downsamples image and mask before fitting (the field is evaluated at full
    resolution): the fit runs on voxels of ``shrink_factor`` × the T1 spacing (DWI stations, on a
    coarser grid, are shrunk less; 2 suits the 3 mm demo grid, 4 a 1–1.5 mm clinical grid).
    ``iterations`` per fitting level; the B-spline mesh starts with one span per
    ``spline_distance_mm`` × 2^(levels − 1) (at least one span per axis) and doubles at every
    level, so ``spline_distance_mm`` (X, Y, Z) is about the last level's span: coarse in-plane
    (a finer in-plane mesh takes the fat/muscle layout for bias), fine along the table (coil
    sensitivity changes fastest towards a station's ends). ``dwi``: also correct DWI stations
    (field fitted on the lowest b-value, applied to every b-value of the station, so ADC is
    unchanged).
    """

    enabled: bool = True
    shrink_factor: int = bounded(2, 1)
    iterations: tuple[int, ...] = (50, 50)
    convergence_threshold: float = bounded(1e-3, 0.0, low_open=True)
    spline_distance_mm: tuple[float, float, float] = (300.0, 300.0, 40.0)
    dwi: bool = True


@dataclass(frozen=True)
class StandardiseConfig:
    """Inter-station intensity standardisation: scale each station to its neighbour from their overlap.

    The factor between neighbours is their intensity ratio over the overlap
    (median voxel-wise ratio inside both body masks), chained outwards from the ``reference`` station
    (``centre``, ``first`` = head end, ``last`` = feet end, ``largest`` = most body voxels).
    An overlap with fewer than ``min_overlap_voxels`` joint body voxels keeps factor 1 (QC warns).
    """

    enabled: bool = True
    reference: Literal["centre", "first", "last", "largest"] = "centre"
    min_overlap_voxels: int = bounded(50, 1)


@dataclass(frozen=True)
class StitchConfig:
    """Stitching onto one grid: the union of the T1 station extents at the T1 spacing.

    ``blend``: ``ramp`` weights each station linearly from 0 to 1 across every overlap
    (weights sum to 1); ``none`` takes each voxel from the station whose ramp weight is largest.
    """

    blend: Literal["ramp", "none"] = "ramp"


@dataclass(frozen=True)
class RegisterConfig:
    """DWI → T1 registration per station (SimpleITK, Mattes mutual information).

    ``transform``: ``translation`` or ``rigid``; the moving image is the station's lowest b-value,
    the fixed image the stitched T1 inside its body mask, cropped to the station ± ``margin_mm``.
    ``sampling_fraction`` of the fixed-mask voxels are sampled (regular grid: deterministic);
    ``shrink_factors``/``smoothing_mm`` define the pyramid; the simplex optimiser stops after
    ``iterations`` or when it moves less than ``tolerance_mm``. A result farther than
    ``max_shift_mm`` from the scanner position is rejected (identity kept, QC flags it).
    ``dwi_stations``: ``none`` (default) registers each DWI station to the T1 on its own;
    ``chained`` first registers the DWI stations to each other through their overlaps, outwards
    from the centre station (each to its already-aligned inner neighbour, a translation), then the
    stitched whole-body DWI to the T1 with one ``transform``
    (:mod:`sapkit.preprocessing.station_registration`; the authors' order).
    """

    enabled: bool = True
    transform: Literal["translation", "rigid"] = "translation"
    bins: int = bounded(32, 8)
    sampling_fraction: float = bounded(0.3, 0.0, 1.0, low_open=True)
    iterations: int = bounded(300, 1)
    tolerance_mm: float = bounded(0.02, 0.0, low_open=True)
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_mm: tuple[float, ...] = (4.0, 0.0)
    margin_mm: float = 20.0
    max_shift_mm: float = bounded(25.0, 0.0)
    dwi_stations: Literal["none", "chained"] = "none"


@dataclass(frozen=True)
class NyulConfig:
    """Nyúl histogram standardisation, learned on the training cohort, applied to T1 and b1000.

    Landmarks are the ``percentiles`` of the body voxels; the standard scale maps the first and
    last landmark to ``scale`` and averages the others over the ``fit_on`` scans (``healthy``:
    the pretraining cohort, never a test patient; ``all``).
    """

    enabled: bool = False
    fit_on: Literal["healthy", "all"] = "healthy"
    percentiles: tuple[float, ...] = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)
    scale: tuple[float, float] = (0.0, 100.0)


@dataclass(frozen=True)
class RawSynthConfig:
    """The synthetic raw cohort (``sapkit synth --raw``): how the phantom is cut into stations.

    ``n_stations`` overlapping stations of equal length (``overlap_mm`` between neighbours); T1 on
    the phantom grid, DWI at ``dwi_inplane_factor`` × the in-plane spacing and
    ``dwi_slice_factor`` × the slice spacing, with ``b_values`` (s/mm²). Each station gets its own
    smooth bias field (max log-deviation ``bias_strength``) and scale (neighbours differ by a factor
    in ``scale_step``), each DWI station a known shift of ``shift_mm`` (range of its length, mm);
    Rician noise of sd ``t1_noise`` / ``dwi_noise`` (scanner units) is added after bias and scale.
    """

    n_stations: int = bounded(5, 4, 8)
    overlap_mm: float = bounded(36.0, 0.0, low_open=True)
    dwi_inplane_factor: float = bounded(2.0, 1.0)
    dwi_slice_factor: float = bounded(1.5, 1.0)
    b_values: tuple[float, ...] = (50.0, 1000.0)
    shift_mm: tuple[float, float] = (2.0, 8.0)
    scale_step: tuple[float, float] = (1.25, 1.6)
    bias_strength: float = bounded(0.25, 0.0)
    t1_noise: float = bounded(8.0, 0.0)
    dwi_noise: float = bounded(6.0, 0.0)


@dataclass(frozen=True)
class RawConfig:
    """``sapkit preprocess``: raw input, DICOM handling and the per-step settings.

    ``input``: a DICOM folder or a stations CSV ("" = none); ``synthetic``: notebook 00a generates
    the synthetic raw cohort and preprocesses it (either one makes ``sapkit reproduce`` run 00a).
    ``labels``: labels CSV for DICOM input; ``rules``: classification rules YAML ("" = the packaged
    ``rules.yaml``); ``converter``: ``dcm2niix`` or ``simpleitk``; ``b_value``: the DWI channel
    (the nearest acquired b-value within ``b_tolerance`` s/mm²); ``write_adc``: write ADC (mm²/s)
    as an extra manifest column when ≥ 2 b-values exist (not a network input).

    ``on_incomplete``: what a scan with a defective acquisition becomes (a missing station, a gap,
    missing slices, T1 and DWI covering different ranges, a spacing outlier, a station mirrored
    against its header; :mod:`sapkit.preprocessing.acquisition`): ``fail`` (default) — not
    preprocessed, status ``incomplete`` or ``inconsistent`` in ``qc/scans.csv`` with the station and
    the world range (mm), left out of the manifest; ``warn`` — preprocessed as acquired and in the
    manifest, status ``warned``, the defects in the ``acquisition`` and ``warnings`` columns;
    ``keep`` — the same with status ``ok`` (the defects still in ``acquisition``).
    ``spacing``: voxel size of the output grid (mm; one value = isotropic, or X Y Z); empty = the
    finest T1 spacing of any station on each axis (never the first file's).
    """

    input: str = ""
    synthetic: bool = False
    labels: str = ""
    rules: str = ""
    converter: Converter = "dcm2niix"
    jobs: int = bounded(1, 1)
    threads: int = bounded(2, 1)
    b_value: float = bounded(1000.0, 0.0, low_open=True)
    b_tolerance: float = bounded(150.0, 0.0)
    write_adc: bool = True
    on_incomplete: Literal["fail", "warn", "keep"] = "fail"
    spacing: tuple[float, ...] = ()
    synth: RawSynthConfig = field(default_factory=RawSynthConfig)
    n4: N4Config = field(default_factory=N4Config)
    standardise: StandardiseConfig = field(default_factory=StandardiseConfig)
    stitch: StitchConfig = field(default_factory=StitchConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    nyul: NyulConfig = field(default_factory=NyulConfig)


def check_raw_config(config: RawConfig) -> RawConfig:
    """Check what the field declarations cannot: choices and ranges of a config built in code, and
    the relations between fields (pyramid lengths, percentile order, pairs of bounds).

    Raises
    ------
    ConfigError
        Listing every bad value with what is allowed, e.g. ``raw.register.transform``.

    Examples
    --------
    >>> check_raw_config(RawConfig()).converter
    'dcm2niix'
    """
    build(RawConfig, to_plain_dict(config), prefix="raw.")  # choices and ranges of every field
    problems = []
    s, r, n = config.synth, config.register, config.nyul
    checks = [
        (len(config.n4.iterations) >= 1 and min(config.n4.iterations) >= 1, "raw.n4.iterations needs ≥ 1 level, each ≥ 1"),
        (min(config.n4.spline_distance_mm) > 0, "raw.n4.spline_distance_mm must be 3 lengths > 0 (mm, X Y Z)"),
        (len(r.shrink_factors) == len(r.smoothing_mm) >= 1 and min(r.shrink_factors) >= 1,
         "raw.register.shrink_factors (each ≥ 1) and raw.register.smoothing_mm need one entry per pyramid level"),
        (len(n.percentiles) >= 3 and list(n.percentiles) == sorted(set(n.percentiles))
         and 0 <= n.percentiles[0] and n.percentiles[-1] <= 100,
         "raw.nyul.percentiles must be ≥ 3 increasing values in [0, 100]"),
        (n.scale[1] > n.scale[0], "raw.nyul.scale must be (low, high) with high > low"),
        (len(config.spacing) in (0, 1, 3) and all(0.05 <= v <= 50 for v in config.spacing),
         "raw.spacing must be empty (finest T1 spacing), one value or three values (X Y Z), each 0.05–50 mm"),
        (len(s.b_values) >= 1 and min(s.b_values) >= 0, "raw.synth.b_values must be ≥ 0 s/mm²"),
        (0 <= s.shift_mm[0] <= s.shift_mm[1], "raw.synth.shift_mm must be (low, high) with 0 ≤ low ≤ high"),
        (1 <= s.scale_step[0] <= s.scale_step[1], "raw.synth.scale_step must be (low, high) with 1 ≤ low ≤ high"),
    ]
    problems += [message for ok, message in checks if not ok]
    if problems:
        raise ConfigError("invalid raw config: " + "; ".join(problems) + "; fix the profile or the -p override")
    return config

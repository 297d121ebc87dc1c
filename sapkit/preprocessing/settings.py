"""Settings of ``sapkit preprocess`` (profile section ``raw``) and of the synthetic raw cohort.

Every step of the raw-scan pipeline is a function with its parameters here and can be switched
off (``raw.n4.enabled=false`` …). Lengths are in mm, intensities in scanner units, b-values in
s/mm². The dataclasses hold only plain types so the profile loader (:mod:`sapkit.config`) can
build and override them like every other section; :func:`check_raw_config` validates the choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sapkit.errors import ConfigError

__all__ = ["N4Config", "StandardiseConfig", "StitchConfig", "RegisterConfig", "NyulConfig", "RawSynthConfig",
           "RawConfig", "check_raw_config", "CONVERTERS"]

#: DICOM → NIfTI converters ``raw.converter`` may name.
CONVERTERS = ("dcm2niix", "simpleitk")


@dataclass(frozen=True)
class N4Config:
    """N4 bias-field correction (SimpleITK) inside a body mask, per station.

    ``shrink_factor`` downsamples image and mask before fitting (the field is evaluated at full
    resolution); ``iterations`` per fitting level; ``spline_distance_mm`` the B-spline
    control-point spacing; ``dwi``: also correct DWI stations (field fitted on the lowest b-value,
    applied to every b-value of the station, so ADC is unchanged).
    """

    enabled: bool = True
    shrink_factor: int = 2
    iterations: tuple[int, ...] = (50, 50, 30)
    convergence_threshold: float = 1e-4
    spline_distance_mm: float = 120.0
    dwi: bool = True


@dataclass(frozen=True)
class StandardiseConfig:
    """Inter-station intensity standardisation: scale each station to its neighbour from their overlap.

    The factor between neighbours is the ratio of their median intensities over the overlap
    (voxels inside both body masks), chained outwards from the ``reference`` station
    (``centre``, ``first`` = head end, ``last`` = feet end, ``largest`` = most body voxels).
    An overlap with fewer than ``min_overlap_voxels`` joint body voxels keeps factor 1 (QC warns).
    """

    enabled: bool = True
    reference: str = "centre"
    min_overlap_voxels: int = 50


@dataclass(frozen=True)
class StitchConfig:
    """Stitching onto one grid: the union of the T1 station extents at the T1 spacing.

    ``blend``: ``ramp`` weights each station linearly from 0 to 1 across every overlap
    (weights sum to 1); ``none`` takes each voxel from the station whose ramp weight is largest.
    """

    blend: str = "ramp"


@dataclass(frozen=True)
class RegisterConfig:
    """DWI → T1 registration per station (SimpleITK, Mattes mutual information).

    ``transform``: ``translation`` or ``rigid``; the moving image is the station's lowest b-value,
    the fixed image the stitched T1 inside its body mask, cropped to the station ± ``margin_mm``.
    ``sampling_fraction`` of the fixed-mask voxels are sampled (fixed seed: deterministic);
    ``shrink_factors``/``smoothing_mm`` define the pyramid. A result farther than
    ``max_shift_mm`` from the scanner position is rejected (identity kept, QC flags it).
    """

    enabled: bool = True
    transform: str = "translation"
    bins: int = 32
    sampling_fraction: float = 0.5
    iterations: int = 200
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_mm: tuple[float, ...] = (4.0, 0.0)
    margin_mm: float = 20.0
    max_shift_mm: float = 25.0


@dataclass(frozen=True)
class NyulConfig:
    """Nyúl histogram standardisation, learned on the training cohort, applied to T1 and b1000.

    Landmarks are the ``percentiles`` of the body voxels; the standard scale maps the first and
    last landmark to ``scale`` and averages the others over the ``fit_on`` scans (``healthy``:
    the pretraining cohort, never a test patient; ``all``).
    """

    enabled: bool = False
    fit_on: str = "healthy"
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

    n_stations: int = 5
    overlap_mm: float = 36.0
    dwi_inplane_factor: float = 2.0
    dwi_slice_factor: float = 1.5
    b_values: tuple[float, ...] = (50.0, 1000.0)
    shift_mm: tuple[float, float] = (2.0, 8.0)
    scale_step: tuple[float, float] = (1.25, 1.6)
    bias_strength: float = 0.25
    t1_noise: float = 8.0
    dwi_noise: float = 6.0


@dataclass(frozen=True)
class RawConfig:
    """``sapkit preprocess``: raw input, DICOM handling and the per-step settings.

    ``input``: a DICOM folder or a stations CSV ("" = none); ``synthetic``: notebook 00a generates
    the synthetic raw cohort and preprocesses it (either one makes ``sapkit reproduce`` run 00a).
    ``labels``: labels CSV for DICOM input; ``rules``: classification rules YAML ("" = the packaged
    ``rules.yaml``); ``converter``: ``dcm2niix`` or ``simpleitk``; ``b_value``: the DWI channel
    (the nearest acquired b-value within ``b_tolerance`` s/mm²); ``write_adc``: write ADC (mm²/s)
    as an extra manifest column when ≥ 2 b-values exist (not a network input).
    """

    input: str = ""
    synthetic: bool = False
    labels: str = ""
    rules: str = ""
    converter: str = "dcm2niix"
    jobs: int = 1
    b_value: float = 1000.0
    b_tolerance: float = 150.0
    write_adc: bool = True
    synth: RawSynthConfig = field(default_factory=RawSynthConfig)
    n4: N4Config = field(default_factory=N4Config)
    standardise: StandardiseConfig = field(default_factory=StandardiseConfig)
    stitch: StitchConfig = field(default_factory=StitchConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    nyul: NyulConfig = field(default_factory=NyulConfig)


_CHOICES = {
    "converter": CONVERTERS, "standardise.reference": ("centre", "first", "last", "largest"),
    "stitch.blend": ("ramp", "none"), "register.transform": ("translation", "rigid"),
    "nyul.fit_on": ("healthy", "all"),
}


def check_raw_config(config: RawConfig) -> RawConfig:
    """Validate the choices and ranges of a :class:`RawConfig`; return it unchanged.

    Raises
    ------
    ConfigError
        Listing every bad value with its allowed range, e.g. ``raw.register.transform``.

    Examples
    --------
    >>> check_raw_config(RawConfig()).converter
    'dcm2niix'
    """
    problems = []
    for key, allowed in _CHOICES.items():
        value = config
        for part in key.split("."):
            value = getattr(value, part)
        if value not in allowed:
            problems.append(f"raw.{key} = {value!r} must be one of {allowed}")
    s = config.synth
    checks = [
        (config.jobs >= 1, f"raw.jobs = {config.jobs} must be ≥ 1"),
        (config.b_value > 0 and config.b_tolerance >= 0, "raw.b_value must be > 0 and raw.b_tolerance ≥ 0"),
        (config.n4.shrink_factor >= 1 and len(config.n4.iterations) >= 1 and min(config.n4.iterations) >= 1,
         "raw.n4.shrink_factor ≥ 1 and raw.n4.iterations ≥ 1 per level"),
        (config.n4.spline_distance_mm > 0, "raw.n4.spline_distance_mm must be > 0"),
        (0 < config.register.sampling_fraction <= 1, "raw.register.sampling_fraction must be in (0, 1]"),
        (len(config.register.shrink_factors) == len(config.register.smoothing_mm) >= 1,
         "raw.register.shrink_factors and raw.register.smoothing_mm need one entry per level"),
        (config.register.bins >= 8 and config.register.iterations >= 1, "raw.register.bins ≥ 8, iterations ≥ 1"),
        (len(config.nyul.percentiles) >= 3 and list(config.nyul.percentiles) == sorted(config.nyul.percentiles)
         and 0 <= config.nyul.percentiles[0] and config.nyul.percentiles[-1] <= 100,
         "raw.nyul.percentiles must be ≥ 3 increasing values in [0, 100]"),
        (config.nyul.scale[1] > config.nyul.scale[0], "raw.nyul.scale must be (low, high) with high > low"),
        (4 <= s.n_stations <= 8, f"raw.synth.n_stations = {s.n_stations} must be in [4, 8]"),
        (s.overlap_mm > 0 and s.dwi_inplane_factor >= 1 and s.dwi_slice_factor >= 1,
         "raw.synth.overlap_mm > 0, dwi_inplane_factor ≥ 1, dwi_slice_factor ≥ 1"),
        (len(s.b_values) >= 1 and min(s.b_values) >= 0, "raw.synth.b_values must be ≥ 0 s/mm²"),
        (0 <= s.shift_mm[0] <= s.shift_mm[1], "raw.synth.shift_mm must be (low, high) with 0 ≤ low ≤ high"),
        (1 <= s.scale_step[0] <= s.scale_step[1], "raw.synth.scale_step must be (low, high) with 1 ≤ low ≤ high"),
        (s.bias_strength >= 0 and s.t1_noise >= 0 and s.dwi_noise >= 0, "raw.synth bias and noise must be ≥ 0"),
    ]
    problems += [message for ok, message in checks if not ok]
    if problems:
        raise ConfigError("invalid raw config: " + "; ".join(problems) + "; fix the profile or the -p override")
    return config

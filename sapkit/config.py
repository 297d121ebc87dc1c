"""Profiles: typed, validated configuration for every stage.

A *profile* (``smoke``, ``demo``, ``paper``) is a YAML file inside ``sapkit/profiles``. It is
loaded into frozen dataclasses; any field can be overridden with dotted keys
(``train.epochs=2`` on the CLI, ``{"lesion": {"epochs": 2}}`` or ``{"lesion.epochs": 2}`` from a
notebook). The resolved configuration is written to ``run_dir/config.yaml``.

Every field declares what it accepts: its type, ``Literal[...]`` for a fixed set of choices
(:data:`Backbone`, :data:`Device`, :data:`Connectivity` …), a pattern for the hit rule, and
``bounded(default, low, high)`` for a numeric range. :func:`load_config` checks every value against
its declaration when the profile is loaded (``sapkit._config_loader``), so an unknown key, a wrong
type, a value outside the choices or the range raises :class:`~sapkit.errors.ConfigError` naming
the dotted key before any stage runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml

from sapkit._config_loader import Pattern, bounded, build, flatten, set_dotted, to_plain_dict
from sapkit.errors import ConfigError
from sapkit._config_raw import (CONVERTERS, Converter, N4Config, NyulConfig, RawConfig, RawSynthConfig, RegisterConfig,
                                StandardiseConfig, StitchConfig, check_raw_config)
from sapkit.io.atomic import atomic_write_text
from sapkit.io.yaml_io import load_yaml_file, load_yaml_text
from sapkit.validation import check_roi_for_network

__all__ = [
    "Config",
    "SynthConfig",
    "SplitConfig",
    "PreprocessConfig",
    "ModelConfig",
    "AugmentConfig",
    "SkeletonConfig",
    "SSLConfig",
    "LesionConfig",
    "InferConfig",
    "EvalConfig",
    "RawConfig",
    "RawSynthConfig",
    "N4Config",
    "StandardiseConfig",
    "StitchConfig",
    "RegisterConfig",
    "NyulConfig",
    "check_raw_config",
    "CONVERTERS",
    "Converter",
    "PROFILES",
    "Backbone",
    "Norm",
    "Device",
    "Blend",
    "ProbDtype",
    "Connectivity",
    "NsdMode",
    "TuneStatistic",
    "SamplerKind",
    "CheckpointChoice",
    "Init",
    "HitRule",
    "load_config",
    "parse_overrides",
    "save_config",
    "config_to_dict",
]

PROFILES = ("smoke", "demo", "paper")
_PROFILE_DIR = Path(__file__).parent / "profiles"

# The choices of every string (and connectivity) option; the loader checks values against them.
Backbone = Literal["swinunetr", "dynunet", "unet"]
Norm = Literal["instance", "batch"]
Device = Literal["auto", "cpu", "cuda"]
Blend = Literal["constant", "gaussian"]
ProbDtype = Literal["float16", "float32"]
AmpDtype = Literal["auto", "bfloat16", "float16"]  # auto: bfloat16 where the GPU supports it (sapkit.networks.precision)
Connectivity = Literal[6, 18, 26]  # 3D voxel neighbourhood: faces, + edges, + corners
NsdMode = Literal["surface", "voxel"]
TuneStatistic = Literal["median", "mean"]
PrecisionRule = Literal["lesion", "prediction"]  # precision counts detected GT lesions, or hitting predictions
SamplerKind = Literal["instance_balanced", "posneg"]
CheckpointChoice = Literal["final", "best"]
HeadInit = Literal["random", "zero"]  # the lesion head re-created after a transfer: default init, or all zeros
Init = Literal["scratch", "ssl", "sap"]
HitRule = Annotated[str, Pattern(r"any|iou:(0?\.[0-9]*[1-9][0-9]*|1(\.0*)?)",
                                 "'any' or 'iou:T' with 0 < T ≤ 1 (e.g. 'iou:0.5')")]


@dataclass(frozen=True)
class SynthConfig:
    """Synthetic cohort (``sapkit.data.phantom``). Sizes in subjects/scans, spacing in mm."""

    n_healthy_subjects: int = 4
    scans_per_subject: int = 3
    n_patients: int = 8
    spacing_mm: float = bounded(3.0, 1e-9)
    n_sites: int = 3
    height_mm: float = 900.0  # field of view from skull base to just below the knees, mm
    seed: int = bounded(42, 0)
    lesion_volume_median_ml: float = 0.5
    lesion_volume_sigma: float = 1.03  # log-sd; 1.03 puts 25 % of lesions at >= 1 mL
    lesion_count_median: float = 3.0
    lesion_count_sigma: float = 1.2
    lesion_count_max: int = 40
    nodes_per_subject: float = 12.0  # mean number of DWI-bright lymph nodes (look-alikes)
    limb_rotation_deg: tuple[float, float] = (5.0, 10.0)  # limb rotation range between repeat scans


@dataclass(frozen=True)
class SplitConfig:
    """Patient cross-validation (stratified by lesion count) and healthy train/val split."""

    k: int = bounded(7, 2)
    tuning_fold: int = 6
    seed: int = bounded(42, 0)
    healthy_val_fraction: float = bounded(0.12, 0.0, 0.99)


@dataclass(frozen=True)
class PreprocessConfig:
    """Per-channel intensity scaling, identical at training and inference."""

    clip_percentiles: tuple[float, float] = (1.0, 99.0)


@dataclass(frozen=True)
class ModelConfig:
    """Network architecture. ``backbone``: ``swinunetr`` (paper), ``dynunet`` or ``unet`` (CPU)."""

    backbone: Backbone = "unet"
    in_channels: int = bounded(2, 2, 2)
    feature_size: int = 48
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    drop_rate: float = 0.1
    attn_drop_rate: float = 0.1
    dropout_path_rate: float = 0.1
    norm_name: Norm = "instance"
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    use_checkpoint: bool = False


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (docs/method.md §4.3); probabilities in [0, 1]."""

    flip_prob: float = bounded(0.5, 0.0, 1.0)
    rot90_prob: float = bounded(0.2, 0.0, 1.0)
    scale_intensity: float = 0.1
    scale_prob: float = bounded(0.1, 0.0, 1.0)
    shift_intensity: float = 0.1
    shift_prob: float = bounded(0.1, 0.0, 1.0)


@dataclass(frozen=True)
class SkeletonConfig:
    """Supervised skeleton pretraining (10 classes). ``roi`` in voxels."""

    epochs: int = bounded(400, 1)
    warmup_epochs: int = 10
    lr: float = bounded(1e-5, 0.0, low_open=True)
    weight_decay: float = bounded(1e-5, 0.0)
    batch_size: int = bounded(2, 1)
    roi: tuple[int, int, int] = (96, 96, 96)
    samples_per_volume: int = 2
    val_every: int = 5
    amp: bool = True
    amp_dtype: AmpDtype = "auto"
    num_classes: int = 10


@dataclass(frozen=True)
class SSLConfig:
    """Tang et al. self-supervised pretraining of the encoder."""

    epochs: int = bounded(400, 1)
    warmup_epochs: int = 10
    lr: float = bounded(1e-4, 0.0, low_open=True)
    weight_decay: float = bounded(1e-5, 0.0)
    batch_size: int = bounded(2, 1)
    roi: tuple[int, int, int] = (96, 96, 96)
    samples_per_volume: int = 2
    temperature: float = bounded(0.5, 1e-9)
    drop_ratio: float = bounded(0.3, 0.0, 1.0)
    drop_block: int = 8
    swap_ratio: float = 0.1
    projection_dim: int = 512
    loss_weight_rotation: float = 1.0
    loss_weight_contrastive: float = 1.0
    loss_weight_reconstruction: float = 1.0
    val_every: int = 5
    amp: bool = True
    amp_dtype: AmpDtype = "auto"


@dataclass(frozen=True)
class LesionConfig:
    """Lesion fine-tuning with instance-balanced sampling, per init (scratch/ssl/sap)."""

    inits: tuple[Init, ...] = ("scratch", "ssl", "sap")
    folds: tuple[str, ...] = ("all",)
    epochs: int = bounded(400, 1)
    warmup_epochs: int = 10
    lr_scratch: float = bounded(1e-5, 0.0, low_open=True)
    lr_encoder_sap: float = bounded(2e-6, 0.0, low_open=True)
    lr_decoder_sap: float = bounded(1e-5, 0.0, low_open=True)
    lr_encoder_ssl: float = bounded(5e-6, 0.0, low_open=True)
    lr_decoder_ssl: float = bounded(1e-5, 0.0, low_open=True)
    weight_decay: float = bounded(1e-5, 0.0)
    batch_size: int = bounded(2, 1)
    roi: tuple[int, int, int] = (96, 96, 96)
    sampler: SamplerKind = "instance_balanced"
    negative_ratio: float = bounded(1.0, 0.0)
    margin_voxels: int = bounded(10, 0)
    connectivity: Connectivity = 26
    val_every: int = 5
    amp: bool = True
    amp_dtype: AmpDtype = "auto"
    label_fraction: float = bounded(1.0, 1e-9, 1.0)
    checkpoint: CheckpointChoice = "final"
    head_init: HeadInit = "random"  # sap/ssl: the re-created output head random (default) or zero (docs/reproducibility.md §5)
    val_max_scans: int = bounded(0, 0)  # validation curves on at most this many validation scans (0 = all)
    val_fraction: float = bounded(0.125, 0.0, 0.5)  # training patients held out for validation (0 = none)


@dataclass(frozen=True)
class InferConfig:
    """Whole-body sliding-window inference. ``roi`` in voxels, ``overlap`` in [0, 1)."""

    roi: tuple[int, int, int] = (96, 96, 96)
    overlap: float = bounded(0.5, 0.0, 1.0, high_open=True)
    blend: Blend = "constant"
    sw_batch_size: int = bounded(4, 1)
    tta_flip: bool = False
    skip_background: bool = True
    crop_to_body: bool = False
    prob_dtype: ProbDtype = "float16"
    amp: bool = True
    amp_dtype: AmpDtype = "auto"


@dataclass(frozen=True)
class EvalConfig:
    """Lesion-wise evaluation (docs/metrics.md §14). Tolerance in mm, volumes in mL."""

    tolerance_mm: float = bounded(2.0, 0.0)
    connectivity: Connectivity = 26
    hit: HitRule = "any"
    precision: PrecisionRule = "lesion"
    nsd_mode: NsdMode = "surface"
    large_lesion_ml: float = bounded(1.0, 0.0)
    oversize_ml: float = bounded(200.0, 1e-9)  # predicted components above this are flagged (metrics.md §15)
    thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
    froc_max_fp: float = bounded(15.0, 0.0)
    froc_max_fp_large: float = bounded(4.0, 0.0)
    tune_statistic: TuneStatistic = "median"
    n_bootstrap: int = bounded(1000, 1)
    seed: int = bounded(42, 0)


@dataclass(frozen=True)
class Config:
    """The complete resolved configuration of one run."""

    profile: str = "paper"
    seed: int = bounded(42, 0)
    device: Device = "auto"
    pin_isa: bool = False  # hold ATen/oneDNN/MKL/OpenBLAS to AVX2: the same weights on any AVX2 CPU (docs/reproducibility.md)
    synth: SynthConfig = field(default_factory=SynthConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    skeleton: SkeletonConfig = field(default_factory=SkeletonConfig)
    ssl: SSLConfig = field(default_factory=SSLConfig)
    lesion: LesionConfig = field(default_factory=LesionConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    raw: RawConfig = field(default_factory=RawConfig)  # sapkit preprocess (its sections: sapkit/_config_raw.py)


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) of a config dataclass, ready for YAML/JSON."""
    return to_plain_dict(config)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse CLI ``key=value`` strings (values read as YAML) into a flat dict.

    Examples
    --------
    >>> parse_overrides(["lesion.epochs=2", "lesion.inits=[sap]"])
    {'lesion.epochs': 2, 'lesion.inits': ['sap']}
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value, e.g. lesion.epochs=2")
        key, raw = item.split("=", 1)
        out[key.strip()] = load_yaml_text(raw, what=f"override '{item}'")
    return out


def load_config(profile: str | Path = "smoke", overrides: Mapping[str, Any] | None = None) -> Config:
    """Load a profile and apply overrides.

    Parameters
    ----------
    profile : str or Path
        ``smoke``, ``demo``, ``paper`` or the path of a YAML file with the same schema.
    overrides : mapping, optional
        Nested (``{"lesion": {"epochs": 2}}``) or dotted (``{"lesion.epochs": 2}``) values.

    Returns
    -------
    Config
        Frozen, validated configuration.

    Raises
    ------
    ConfigError
        Unknown profile, unknown key or a value of the wrong type/choice.
    """
    path = Path(profile)
    if str(profile) in PROFILES:
        path = _PROFILE_DIR / f"{profile}.yaml"
    elif path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise ConfigError(f"unknown profile '{profile}'; use one of {', '.join(PROFILES)} or a YAML file path")
    raw = load_yaml_file(path, what=f"profile {path}") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"profile {path} must be a YAML mapping of sections (lesion: {{epochs: 2}}, ...), "
                          f"got a {type(raw).__name__}; see sapkit/profiles/smoke.yaml")
    tree = config_to_dict(Config())
    for key, value in flatten(raw).items():
        set_dotted(tree, key, value)
    for key, value in flatten(overrides or {}).items():
        set_dotted(tree, key, value)
    config = build(Config, tree)
    _check_rois(config)
    return config


def _check_rois(config: Config) -> None:
    """Every patch/window size fits the network (checked here, not hours later when it is built)."""
    m = config.model
    factor = 32 if m.backbone == "swinunetr" else 2 ** max(len(m.channels) - 1, 0)
    for section in ("skeleton", "ssl", "lesion", "infer"):
        check_roi_for_network(getattr(config, section).roi, factor, m.backbone, what=f"{section}.roi")


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) and return the path."""
    return atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))

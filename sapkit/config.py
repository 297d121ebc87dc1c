"""Profiles: typed, validated configuration for every stage.

A *profile* (``smoke``, ``demo``, ``paper``) is a YAML file inside ``sapkit/profiles``. It is
loaded into frozen dataclasses; any field can be overridden with dotted keys
(``train.epochs=2`` on the CLI, ``{"lesion": {"epochs": 2}}`` or ``{"lesion.epochs": 2}`` from a
notebook). Unknown keys and wrongly typed values raise :class:`~sapkit.errors.ConfigError`.
The resolved configuration is written to ``run_dir/config.yaml``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from sapkit.errors import ConfigError

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
    "PROFILES",
    "load_config",
    "parse_overrides",
    "save_config",
    "config_to_dict",
]

PROFILES = ("smoke", "demo", "paper")
_PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class SynthConfig:
    """Synthetic cohort (``sapkit.data.phantom``). Sizes in subjects/scans, spacing in mm."""

    n_healthy_subjects: int = 4
    scans_per_subject: int = 3
    n_patients: int = 8
    spacing_mm: float = 3.0
    n_sites: int = 3
    height_mm: float = 900.0  # field of view from skull base to just below the knees, mm
    seed: int = 42
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

    k: int = 7
    tuning_fold: int = 6
    seed: int = 42
    healthy_val_fraction: float = 0.12


@dataclass(frozen=True)
class PreprocessConfig:
    """Per-channel intensity scaling, identical at training and inference."""

    clip_percentiles: tuple[float, float] = (1.0, 99.0)


@dataclass(frozen=True)
class ModelConfig:
    """Network architecture. ``backbone``: ``swinunetr`` (paper), ``dynunet`` or ``unet`` (CPU)."""

    backbone: str = "unet"
    in_channels: int = 2
    feature_size: int = 48
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    drop_rate: float = 0.1
    attn_drop_rate: float = 0.1
    dropout_path_rate: float = 0.1
    norm_name: str = "instance"
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    use_checkpoint: bool = False


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (SPEC §4); probabilities in [0, 1]."""

    flip_prob: float = 0.5
    rot90_prob: float = 0.2
    scale_intensity: float = 0.1
    scale_prob: float = 0.1
    shift_intensity: float = 0.1
    shift_prob: float = 0.1


@dataclass(frozen=True)
class SkeletonConfig:
    """Supervised skeleton pretraining (10 classes). ``roi`` in voxels."""

    epochs: int = 400
    warmup_epochs: int = 10
    lr: float = 1e-5
    weight_decay: float = 1e-5
    batch_size: int = 2
    roi: tuple[int, int, int] = (96, 96, 96)
    samples_per_volume: int = 2
    val_every: int = 5
    amp: bool = True
    num_classes: int = 10


@dataclass(frozen=True)
class SSLConfig:
    """Tang et al. self-supervised pretraining of the encoder."""

    epochs: int = 400
    warmup_epochs: int = 10
    lr: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 2
    roi: tuple[int, int, int] = (96, 96, 96)
    samples_per_volume: int = 2
    temperature: float = 0.5
    drop_ratio: float = 0.3
    drop_block: int = 8
    swap_ratio: float = 0.1
    projection_dim: int = 512
    loss_weight_rotation: float = 1.0
    loss_weight_contrastive: float = 1.0
    loss_weight_reconstruction: float = 1.0
    val_every: int = 5
    amp: bool = True


@dataclass(frozen=True)
class LesionConfig:
    """Lesion fine-tuning with instance-balanced sampling, per init (scratch/ssl/sap)."""

    inits: tuple[str, ...] = ("scratch", "ssl", "sap")
    folds: tuple[str, ...] = ("all",)
    epochs: int = 400
    warmup_epochs: int = 10
    lr_scratch: float = 1e-5
    lr_encoder_sap: float = 2e-6
    lr_decoder_sap: float = 1e-5
    lr_encoder_ssl: float = 5e-6
    lr_decoder_ssl: float = 1e-5
    weight_decay: float = 1e-5
    batch_size: int = 2
    roi: tuple[int, int, int] = (96, 96, 96)
    sampler: str = "instance_balanced"
    negative_ratio: float = 1.0
    margin_voxels: int = 10
    connectivity: int = 26
    val_every: int = 5
    amp: bool = True
    label_fraction: float = 1.0
    checkpoint: str = "final"
    val_max_scans: int = 0  # validation curves on at most this many held-out scans (0 = all)


@dataclass(frozen=True)
class InferConfig:
    """Whole-body sliding-window inference. ``roi`` in voxels, ``overlap`` in [0, 1)."""

    roi: tuple[int, int, int] = (96, 96, 96)
    overlap: float = 0.5
    blend: str = "constant"
    sw_batch_size: int = 4
    tta_flip: bool = False
    skip_background: bool = True
    crop_to_body: bool = False
    prob_dtype: str = "float16"
    amp: bool = True


@dataclass(frozen=True)
class EvalConfig:
    """Lesion-wise evaluation (SPEC §6). Tolerance in mm, volumes in mL."""

    tolerance_mm: float = 2.0
    connectivity: int = 26
    hit: str = "any"
    nsd_mode: str = "surface"
    large_lesion_ml: float = 1.0
    thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
    froc_max_fp: float = 15.0
    froc_max_fp_large: float = 4.0
    tune_statistic: str = "median"
    n_bootstrap: int = 1000
    seed: int = 42


@dataclass(frozen=True)
class Config:
    """The complete resolved configuration of one run."""

    profile: str = "paper"
    seed: int = 42
    device: str = "auto"
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


_CHOICES: dict[str, tuple[Any, ...]] = {
    "model.backbone": ("swinunetr", "dynunet", "unet"),
    "model.norm_name": ("instance", "batch"),
    "infer.blend": ("constant", "gaussian"),
    "infer.prob_dtype": ("float16", "float32"),
    "eval.connectivity": (6, 18, 26),
    "lesion.connectivity": (6, 18, 26),
    "eval.nsd_mode": ("surface", "voxel"),
    "eval.tune_statistic": ("median", "mean"),
    "lesion.sampler": ("instance_balanced", "posneg"),
    "lesion.checkpoint": ("final", "best"),
    "device": ("auto", "cpu", "cuda"),
}
# Every element of these sequences must be one of the choices.
_ELEMENT_CHOICES: dict[str, tuple[Any, ...]] = {"lesion.inits": ("scratch", "ssl", "sap")}
# (low, high, what): inclusive bounds; None = unbounded.
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "eval.tolerance_mm": (0.0, None), "eval.large_lesion_ml": (0.0, None), "eval.froc_max_fp": (0.0, None),
    "eval.froc_max_fp_large": (0.0, None), "eval.n_bootstrap": (1, None),
    "infer.overlap": (0.0, 0.99), "infer.sw_batch_size": (1, None),
    "lesion.label_fraction": (1e-9, 1.0), "lesion.negative_ratio": (0.0, None), "lesion.margin_voxels": (0, None),
    "lesion.epochs": (1, None), "lesion.val_max_scans": (0, None), "skeleton.epochs": (1, None), "ssl.epochs": (1, None),
    "lesion.batch_size": (1, None), "skeleton.batch_size": (1, None), "ssl.batch_size": (1, None),
    "ssl.drop_ratio": (0.0, 1.0), "ssl.temperature": (1e-9, None), "synth.spacing_mm": (1e-9, None),
    "splits.k": (2, None), "splits.healthy_val_fraction": (0.0, 0.99), "model.in_channels": (2, 2),
}
for _section in ("augment",):
    for _key in ("flip_prob", "rot90_prob", "scale_prob", "shift_prob"):
        _RANGES[f"{_section}.{_key}"] = (0.0, 1.0)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/override value to the annotated type or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section '{key}' must be a mapping, got {value!r}")
        return _build(annotation, value, prefix=key + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"config key '{key}' needs {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"config key '{key}' has an unsupported type {annotation!r}")  # pragma: no cover


def _build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
            f"valid keys under '{prefix.rstrip('.') or 'top level'}' are: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in values.items():
        key = prefix + name
        coerced = _coerce(value, hints[name], key)
        if key in _CHOICES and coerced not in _CHOICES[key]:
            raise ConfigError(f"config key '{key}' must be one of {_CHOICES[key]}, got {coerced!r}")
        if key in _ELEMENT_CHOICES:
            bad = [v for v in coerced if v not in _ELEMENT_CHOICES[key]]
            if bad:
                raise ConfigError(f"config key '{key}' has {bad}; each entry must be one of {_ELEMENT_CHOICES[key]}")
        if key in _RANGES:
            low, high = _RANGES[key]
            if (low is not None and coerced < low) or (high is not None and coerced > high):
                raise ConfigError(f"config key '{key}' must be in [{low}, {high if high is not None else '∞'}], "
                                  f"got {coerced!r}")
        kwargs[name] = coerced
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) of a config dataclass, ready for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if part not in node:
                raise ConfigError(f"unknown config section '{part}' in override '{dotted}'")
            raise ConfigError(f"'{part}' is a value, not a section, in override '{dotted}'")
        node = child
    if parts[-1] not in node:
        raise ConfigError(
            f"unknown config key '{dotted}'; valid keys here: {', '.join(sorted(node))}"
        )
    node[parts[-1]] = value


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


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
        out[key.strip()] = yaml.safe_load(raw)
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
    raw = yaml.safe_load(path.read_text()) or {}
    tree = config_to_dict(Config())
    for key, value in _flatten(raw).items():
        _set_dotted(tree, key, value)
    for key, value in _flatten(overrides or {}).items():
        _set_dotted(tree, key, value)
    return _build(Config, tree)


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) and return the path."""
    from sapkit.io.nifti import atomic_write_text

    return atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))

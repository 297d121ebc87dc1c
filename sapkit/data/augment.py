"""Training augmentation of docs/method.md §4.3, reproducible from (seed, epoch, sample index).

A random augmentation is two steps: :func:`sample_augment` draws an :class:`AugmentParams`
from a passed ``numpy.random.Generator``; :func:`apply_augment` applies it deterministically to
the image and its label together. :func:`augment_rng` makes that generator from
``(seed, epoch, index)`` so a resumed run draws exactly what an uninterrupted run would.

Defaults (``config.augment``): flip each axis with p = 0.5; rotate by k·90° (k ∈ {1, 2, 3}) in
one random plane of equal-sized axes with p = 0.2; scale intensities by (1 + u), u ~ U(−0.1, 0.1),
with p = 0.1; shift intensities by u ~ U(−0.1, 0.1) with p = 0.1 (all channels together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sapkit.config import AugmentConfig
from sapkit.errors import ConfigError

__all__ = ["AugmentParams", "augment_rng", "sample_augment", "apply_augment", "augment"]

_STREAM_AUGMENT = 101


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation.

    Attributes
    ----------
    flip_axes : tuple of int
        Spatial axes (0 = X, 1 = Y, 2 = Z) to flip.
    rot_k : int
        Number of 90° turns (0 = none).
    rot_axes : tuple of int
        The two spatial axes of the rotation plane.
    scale : float
        Intensity factor (1.0 = none).
    shift : float
        Intensity offset (0.0 = none), in scaled-intensity units.
    """

    flip_axes: tuple[int, ...] = ()
    rot_k: int = 0
    rot_axes: tuple[int, int] = (0, 1)
    scale: float = 1.0
    shift: float = 0.0


def augment_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Generator for sample ``index`` of ``epoch``: independent of everything drawn before."""
    return np.random.default_rng([int(seed), _STREAM_AUGMENT, int(epoch), int(index)])


def sample_augment(rng: np.random.Generator, augment_config: AugmentConfig, *, spatial_shape: tuple[int, int, int]) -> AugmentParams:
    """Draw augmentation parameters.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (see :func:`augment_rng`).
    augment_config : sapkit.config.AugmentConfig
        Probabilities and ranges.
    spatial_shape : (3,) tuple of int
        Patch shape; rotations use only planes whose two axes have the same size.

    Returns
    -------
    AugmentParams
    """
    for name in ("flip_prob", "rot90_prob", "scale_prob", "shift_prob"):
        p = getattr(augment_config, name)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"augment.{name} must be in [0, 1], got {p}")
    c = augment_config
    flips = tuple(ax for ax in range(3) if rng.random() < c.flip_prob)
    planes = [(a, b) for a, b in ((0, 1), (0, 2), (1, 2)) if spatial_shape[a] == spatial_shape[b]]
    rot_k, rot_axes = 0, (0, 1)
    do_rot = rng.random() < c.rot90_prob
    k = int(rng.integers(1, 4))
    plane = int(rng.integers(0, 3))
    if do_rot and planes:
        rot_k, rot_axes = k, planes[plane % len(planes)]
    do_scale = rng.random() < c.scale_prob
    u_scale = float(rng.uniform(-c.scale_intensity, c.scale_intensity))
    do_shift = rng.random() < c.shift_prob
    u_shift = float(rng.uniform(-c.shift_intensity, c.shift_intensity))
    return AugmentParams(flip_axes=flips, rot_k=rot_k, rot_axes=rot_axes,
                         scale=1.0 + u_scale if do_scale else 1.0, shift=u_shift if do_shift else 0.0)


def apply_augment(
    image: npt.NDArray[np.float32], label: npt.NDArray | None, params: AugmentParams,
) -> tuple[npt.NDArray[np.float32], npt.NDArray | None]:
    """Apply ``params`` to an image ``(C, X, Y, Z)`` and its label ``(X, Y, Z)`` (or None).

    Returns new contiguous arrays; inputs are not modified.
    """
    if image.ndim != 4:
        raise ConfigError(f"image must be (C, X, Y, Z), got shape {image.shape}")
    if label is not None and label.shape != image.shape[1:]:
        raise ConfigError(f"label shape {label.shape} != image spatial shape {image.shape[1:]}")
    img, lab = image, label
    if params.flip_axes:
        img = np.flip(img, axis=tuple(a + 1 for a in params.flip_axes))
        lab = np.flip(lab, axis=params.flip_axes) if lab is not None else None
    if params.rot_k:
        a, b = params.rot_axes
        img = np.rot90(img, k=params.rot_k, axes=(a + 1, b + 1))
        lab = np.rot90(lab, k=params.rot_k, axes=(a, b)) if lab is not None else None
    img = np.ascontiguousarray(img, dtype=np.float32)
    if params.scale != 1.0 or params.shift != 0.0:
        img = (img * np.float32(params.scale) + np.float32(params.shift)).astype(np.float32)
    elif img is image:
        img = image.copy()
    lab = np.ascontiguousarray(lab) if lab is not None else None
    if lab is not None and lab is label:
        lab = label.copy()
    return img, lab


def augment(
    image: npt.NDArray[np.float32], label: npt.NDArray | None, augment_config: AugmentConfig, *, rng: np.random.Generator,
) -> tuple[npt.NDArray[np.float32], npt.NDArray | None]:
    """Sample parameters from ``rng`` and apply them (image and label together)."""
    params = sample_augment(rng, augment_config, spatial_shape=tuple(image.shape[1:]))  # type: ignore[arg-type]
    return apply_augment(image, label, params)

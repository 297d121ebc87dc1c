"""Per-channel intensity scaling, identical at training and inference (docs/method.md §3).

Each channel is clipped to its own [p_low, p_high] percentiles computed over the whole volume
and rescaled to [0, 1]. The authors' code clipped differently at training and inference; here
one function serves both.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, SapkitError

__all__ = ["scale_intensity", "channel_percentiles"]


def channel_percentiles(image: npt.NDArray, percentiles: tuple[float, float] = (1.0, 99.0)) -> npt.NDArray[np.float64]:
    """Per-channel percentiles of a ``(C, X, Y, Z)`` image → array of shape ``(C, 2)``."""
    _check_image(image)
    flat = image.reshape(image.shape[0], -1)
    return np.stack([np.percentile(c, percentiles) for c in flat]).astype(np.float64)


def scale_intensity(
    image: npt.NDArray, *, percentiles: tuple[float, float] = (1.0, 99.0)
) -> npt.NDArray[np.float32]:
    """Clip each channel to its percentiles and rescale to [0, 1].

    Parameters
    ----------
    image : (C, X, Y, Z) float array
        Raw intensities, channels first (0 = T1, 1 = b1000).
    percentiles : (low, high)
        Percentiles in [0, 100] computed over the whole volume of each channel.

    Returns
    -------
    (C, X, Y, Z) float32 in [0, 1]
        A constant channel maps to zeros.

    Examples
    --------
    >>> x = np.arange(101, dtype=np.float32).reshape(1, 101, 1, 1)
    >>> y = scale_intensity(x, percentiles=(1, 99))
    >>> float(y.min()), float(y.max()), round(float(y[0, 50, 0, 0]), 3)
    (0.0, 1.0, 0.5)
    """
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}; use e.g. (1, 99)")
    bounds = channel_percentiles(image, (low, high))
    out = np.empty(image.shape, dtype=np.float32)
    for c, (lo, hi) in enumerate(bounds):
        if hi <= lo:
            out[c] = 0.0
            continue
        np.clip(image[c], lo, hi, out=out[c])
        out[c] -= lo
        out[c] /= hi - lo
    return out


def _check_image(image: npt.NDArray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 4:
        shape = getattr(image, "shape", None)
        raise SapkitError(f"image must be a channels-first (C, X, Y, Z) array, got shape {shape}")

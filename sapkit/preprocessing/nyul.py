"""Nyúl histogram standardisation (Nyúl, Udupa & Zhang 2000), learned on a training cohort.

Each image's landmarks are percentiles of its body voxels. Learning maps every training image's
first and last landmark linearly onto a standard scale and averages where the other landmarks
land; applying maps an image's landmarks onto those standard positions piecewise linearly
(extended linearly beyond the ends, clipped at 0). Intensities of one tissue then mean the same
number in every scan and every site — but the mapping is learned from data, so it is learned on
the training cohort only (``raw.nyul.fit_on``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["landmarks", "fit_standard_scale", "apply_standard_scale"]


def landmarks(image: npt.ArrayLike, mask: npt.ArrayLike, percentiles: Sequence[float]) -> npt.NDArray[np.float64]:
    """Percentiles (``percentiles`` in [0, 100]) of the intensities inside ``mask``."""
    values = np.asarray(image)[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        raise ValueError("landmarks need a non-empty body mask")
    return np.percentile(values.astype(np.float64), list(percentiles))


def fit_standard_scale(image_landmarks: Sequence[npt.ArrayLike], *, scale: tuple[float, float] = (0.0, 100.0)
                       ) -> npt.NDArray[np.float64]:
    """Standard landmark positions: each image's landmarks mapped so first/last hit ``scale``, averaged.

    Examples
    --------
    >>> fit_standard_scale([[0, 5, 10], [10, 30, 30]], scale=(0, 100)).tolist()
    [0.0, 75.0, 100.0]
    """
    rows = []
    for lm in image_landmarks:
        lm = np.asarray(lm, dtype=np.float64)
        width = lm[-1] - lm[0]
        if width <= 0:
            continue
        rows.append(scale[0] + (lm - lm[0]) / width * (scale[1] - scale[0]))
    if not rows:
        raise ValueError("no image with distinct first and last landmarks to learn a standard scale from")
    return np.mean(rows, axis=0)


def apply_standard_scale(image: npt.ArrayLike, image_landmarks: npt.ArrayLike,
                         standard: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Map intensities piecewise linearly from ``image_landmarks`` to ``standard`` (float32, ≥ 0).

    Examples
    --------
    >>> apply_standard_scale(np.array([0.0, 5.0, 10.0, 20.0]), [0, 10, 20], [0, 80, 100]).tolist()
    [0.0, 40.0, 80.0, 100.0]
    """
    x = np.asarray(image_landmarks, dtype=np.float64)
    y = np.asarray(standard, dtype=np.float64)
    keep = np.concatenate([[True], np.diff(x) > 0])
    x, y = x[keep], y[keep]
    img = np.asarray(image, dtype=np.float64)
    out = np.interp(img, x, y)
    lo_slope = (y[1] - y[0]) / (x[1] - x[0]) if len(x) > 1 else 1.0
    hi_slope = (y[-1] - y[-2]) / (x[-1] - x[-2]) if len(x) > 1 else 1.0
    out = np.where(img < x[0], y[0] + (img - x[0]) * lo_slope, out)
    out = np.where(img > x[-1], y[-1] + (img - x[-1]) * hi_slope, out)
    return np.maximum(out, 0.0).astype(np.float32)

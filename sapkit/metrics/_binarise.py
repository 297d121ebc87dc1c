"""The one threshold rule of the kit: ``prob >= t`` compared at the probability map's own precision.

A voxel is foreground when its stored value is ``>= t`` after ``t`` is rounded to the map's dtype
(``docs/metrics.md`` §2). A float32 map holding ``float32(0.7)`` (0.699999988…, e.g. a map
rounded to two decimals or a uint8 percent map scaled on reading) is therefore foreground at
``t = 0.7``, exactly as ``prob >= 0.7`` behaves on a float32 array under NumPy's type promotion.
Tuning and FROC counts, the lesion report, ``sapkit evaluate``, the lesion-explorer widgets and
``sapkit predict``'s lesion masks all binarise through this rule.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sapkit.errors import MetricInputError

__all__ = ["threshold_in_dtype", "threshold_mask"]


def threshold_in_dtype(threshold: float, dtype: npt.DTypeLike) -> float:
    """``threshold`` rounded to the nearest value of the floating ``dtype`` (returned as a float).

    Comparing the map's values (exactly representable as float64) with this number in float64
    gives the same answer as comparing them with ``threshold`` in the map's dtype.

    Examples
    --------
    >>> threshold_in_dtype(0.7, np.float32) < 0.7, threshold_in_dtype(0.7, np.float64) == 0.7
    (True, True)
    """
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise MetricInputError(f"a probability map must have a floating-point dtype, got {dt}; "
                               "scale integer maps to [0, 1] floats first")
    return float(np.asarray(threshold, dtype=dt))


def threshold_mask(prob_map: npt.ArrayLike, threshold: float) -> npt.NDArray[np.bool_]:
    """Foreground of a probability map under the kit's rule: ``prob_map >= threshold`` in the map's dtype.

    Parameters
    ----------
    prob_map : array of float16/float32/float64
        Lesion probability per voxel, any shape.
    threshold : float
        In (0, 1].

    Returns
    -------
    ndarray of bool
        Same shape as ``prob_map``.

    Raises
    ------
    MetricInputError
        ``threshold`` outside (0, 1] or ``prob_map`` not floating point.

    Examples
    --------
    >>> p = np.array([0.69, 0.7, 0.71], dtype=np.float32)
    >>> threshold_mask(p, 0.7).tolist(), threshold_mask(p.astype(np.float16), 0.7).tolist()
    ([False, True, True], [False, True, True])
    """
    prob = np.asarray(prob_map)
    if not 0.0 < float(threshold) <= 1.0:
        raise MetricInputError(f"threshold must be in (0, 1], got {threshold!r}; e.g. 0.5")
    t = threshold_in_dtype(threshold, prob.dtype)
    return prob >= np.asarray(t, dtype=prob.dtype)

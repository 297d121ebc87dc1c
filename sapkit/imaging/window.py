"""The one display-window rule: which intensities a figure or viewer shows as black and as white.

Rule (pinned by ``tests/imaging/test_window.py``)
--------------------------------------------------
- **Limits**: ``low`` and ``high`` are percentiles of the voxels shown — the 1st and the 99th
  (:data:`DISPLAY_PERCENTILES`) — taken over the voxels inside ``mask`` when one is given (the
  body, so that the air around it does not set the window). ``high`` is at least ``low + 1e-6``
  (a flat image still gets a window); no voxel to take them from gives ``(0, 1)``.
- **Grey levels**: ``grey = 255 · clip((x − low) / (high − low), 0, 1)``, truncated to uint8
  (:func:`to_grey`).
- **3D renders** use :data:`RENDER_PERCENTILES` (50th–99.5th): a volume renderer makes every voxel
  below ``low`` transparent, so starting at the median lets the dark half of a body scan (air,
  background) clip away instead of filling the view with grey fog.

Used by the slice renderer and the lesion explorer (:mod:`sapkit.plotting.slices`,
:mod:`sapkit.plotting.widgets`), the 3D viewer (:mod:`sapkit.plotting.viewers`) and the
preprocessing QC montage (:mod:`sapkit.preprocessing.qc`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["DISPLAY_PERCENTILES", "RENDER_PERCENTILES", "display_window", "to_grey"]

#: Percentiles of the shown voxels mapped to black and white on slices, montages and projections.
DISPLAY_PERCENTILES = (1.0, 99.0)
#: Percentiles of a 3D volume render: ``low`` is also the transparency cut (module docstring).
RENDER_PERCENTILES = (50.0, 99.5)
_MIN_WIDTH = 1e-6


def display_window(image: npt.ArrayLike, *, mask: npt.ArrayLike | None = None,
                   percentiles: tuple[float, float] = DISPLAY_PERCENTILES) -> tuple[float, float]:
    """``(low, high)`` intensities shown as black and white (the module's rule).

    Parameters
    ----------
    image : array
        The voxels shown (a plane, a volume, a projection or already selected values).
    mask : bool array of ``image``'s shape, optional
        Only these voxels set the window (e.g. the body).
    percentiles : (float, float)
        :data:`DISPLAY_PERCENTILES` (default) or :data:`RENDER_PERCENTILES` for a 3D render.

    Examples
    --------
    >>> display_window(np.arange(101.0))
    (1.0, 99.0)
    >>> display_window(np.arange(101.0), mask=np.arange(101) >= 50)
    (50.5, 99.5)
    >>> display_window(np.full(4, 3.0)), display_window(np.zeros(0))
    ((3.0, 3.000001), (0.0, 1.0))
    """
    values = np.asarray(image)
    if mask is not None:
        values = values[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, percentiles))
    return low, max(high, low + _MIN_WIDTH)


def to_grey(image: npt.ArrayLike, window: tuple[float, float]) -> npt.NDArray[np.uint8]:
    """Grey levels 0–255 of ``image`` under ``window`` = ``(low, high)``: ``255 · clip((x − low)/(high − low), 0, 1)``.

    Examples
    --------
    >>> to_grey(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), (0.0, 1.0)).tolist()
    [0, 0, 127, 255, 255]
    """
    low, high = float(window[0]), float(window[1])
    scaled = (np.asarray(image, dtype=np.float64) - low) / max(high - low, _MIN_WIDTH)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)

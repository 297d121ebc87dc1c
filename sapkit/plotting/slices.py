"""The plotly slice viewer of :mod:`sapkit.plotting.viewers` (re-exported there): slices, label contours, colours.

Also holds the input check shared by every viewer (:func:`sapkit.plotting.viewers.view` and
:func:`slice_figure`) and the colours all backends use.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, MetricInputError

__all__ = ["LABEL_COLORS", "PREDICTION_COLOR", "label_boundaries", "slice_figure"]

#: Colour of label value ``k`` is ``LABEL_COLORS[(k - 1) % len(LABEL_COLORS)]``; 0 is transparent.
LABEL_COLORS: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
)
#: Colour of a predicted mask (any non-zero value) in every backend.
PREDICTION_COLOR = "#00e5ff"

_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}


# ----------------------------------------------------------------------------- validation
def _check_inputs(image: npt.ArrayLike, labels: npt.ArrayLike | None, prediction: npt.ArrayLike | None,
                  spacing_mm: float | Sequence[float], channel: int
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[float, float, float]]:
    image = np.asarray(image)
    if image.ndim == 4:
        if not 0 <= channel < image.shape[0]:
            raise MetricInputError(f"channel {channel} does not exist in an image of shape {image.shape} "
                                   f"(C, X, Y, Z); pass channel in 0..{image.shape[0] - 1}.")
        image = image[channel]
    if image.ndim != 3:
        raise MetricInputError(f"image must be (X, Y, Z) or (C, X, Y, Z), got shape {image.shape}; "
                               "pass one volume, e.g. case.image.")
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)) if np.ndim(spacing_mm) == 0 \
        else np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise MetricInputError(f"spacing_mm must be 3 positive numbers (mm), got {spacing_mm!r}; "
                               "pass case.spacing_mm.")
    out = []
    for name, arr in (("labels", labels), ("prediction", prediction)):
        if arr is None:
            out.append(None)
            continue
        arr = np.asarray(arr)
        if arr.shape != image.shape:
            raise MetricInputError(f"{name} shape {arr.shape} ≠ image shape {image.shape}; "
                                   "resample both onto the same grid first.")
        if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
            raise MetricInputError(f"{name} must be an integer or bool label map, got dtype {arr.dtype}; "
                                   "threshold a probability map first (prob_map >= threshold).")
        out.append(arr.astype(np.int16))
    return image.astype(np.float32, copy=False), out[0], out[1], tuple(float(s) for s in spacing)


# ----------------------------------------------------------------------------- plotly
def label_boundaries(label_map: npt.NDArray, *, axis: int) -> np.ndarray:
    """Voxels of a label map on the in-plane boundary of their region (4-neighbourhood).

    Parameters
    ----------
    label_map : (X, Y, Z) int array
    axis : int
        Slicing axis; boundaries are computed within planes normal to it.

    Returns
    -------
    (X, Y, Z) same dtype
        The label value on boundary voxels, 0 elsewhere.

    Examples
    --------
    >>> square = np.zeros((1, 5, 5), int); square[0, 1:4, 1:4] = 2
    >>> int(label_boundaries(square, axis=0)[0].sum()) // 2   # 8 ring voxels, the centre is inside
    8
    """
    lab = np.asarray(label_map)
    edge = np.zeros(lab.shape, bool)
    for ax in {0, 1, 2} - {axis}:
        diff = np.diff(lab, axis=ax) != 0
        pad_lo = [(0, 0)] * 3
        pad_hi = [(0, 0)] * 3
        pad_lo[ax], pad_hi[ax] = (1, 0), (0, 1)
        edge |= np.pad(diff, pad_lo) | np.pad(diff, pad_hi)
        first = [slice(None)] * 3
        last = [slice(None)] * 3
        first[ax], last[ax] = 0, -1
        edge[tuple(first)] = True  # a region touching the volume border is closed there
        edge[tuple(last)] = True
    return np.where(edge & (lab != 0), lab, 0).astype(lab.dtype)


def _discrete_colorscale(colors: Sequence[str]) -> list[list]:
    n = len(colors)
    scale = []
    for i, color in enumerate(colors):
        scale += [[i / n, color], [(i + 1) / n, color]]
    return scale


def _plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """2D plane, transposed so rows run along the second remaining axis (plotly's y)."""
    return np.take(volume, index, axis=axis).T


def slice_figure(image: npt.ArrayLike, labels: npt.ArrayLike | None = None, prediction: npt.ArrayLike | None = None,
                 *, spacing_mm: float | Sequence[float], axis: str = "coronal", channel: int = 0,
                 max_slices: int = 64, title: str | None = None):
    """Static plotly slice viewer: a slider over slices, label and prediction contours.

    Parameters
    ----------
    image : (X, Y, Z) or (C, X, Y, Z) float array
        RAS voxel order.
    labels, prediction : (X, Y, Z) int or bool array, optional
        Label map (coloured contours per value) and predicted mask (cyan contour).
    spacing_mm : float or sequence of 3 float
        Voxel size in mm; axes are drawn in mm with equal aspect.
    axis : {"coronal", "axial", "sagittal"}
        Slicing direction.
    channel : int
        Channel shown when ``image`` is 4D.
    max_slices : int
        At most this many evenly spaced slices are stored (keeps the figure small).
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        Traces: image, label contours, prediction contours; one frame per stored slice. It opens
        on the slice with most predicted voxels (else label voxels, else the middle slice).
        Export with ``fig.write_html(path, auto_play=False)`` (plotly otherwise plays the
        frames once when the page opens).

    Raises
    ------
    MetricInputError
        Wrong shapes, dtypes, spacing or channel.
    """
    import plotly.graph_objects as go

    if axis not in _AXES:
        raise ConfigError(f"axis must be one of {tuple(_AXES)}, got {axis!r}.")
    if max_slices < 1:
        raise ConfigError(f"max_slices must be ≥ 1, got {max_slices}.")
    img, lab, pred, spacing = _check_inputs(image, labels, prediction, spacing_mm, channel)
    ax = _AXES[axis]
    u_ax, v_ax = [a for a in range(3) if a != ax]
    n = img.shape[ax]
    indices = np.unique(np.linspace(0, n - 1, min(n, max_slices)).round().astype(int))
    low, high = np.percentile(img, (1.0, 99.0))
    grey = np.clip((img - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)
    n_colors = len(LABEL_COLORS)
    lab_edge = None if lab is None else label_boundaries(lab, axis=ax)
    pred_edge = None if pred is None else label_boundaries((pred > 0).astype(np.int16), axis=ax)

    def _contour(edge: np.ndarray, k: int, name: str, **marker) -> Any:
        # Boundary voxels as small square markers at voxel centres (mm): compact and exportable.
        plane = _plane(edge, ax, k)
        rows, cols = np.nonzero(plane)
        values = plane[rows, cols]
        colour = marker.pop("color", None)
        if colour is None:
            colour = ((values - 1) % n_colors).astype(np.float32)
            marker.update(colorscale=_discrete_colorscale(LABEL_COLORS), cmin=-0.5, cmax=n_colors - 0.5)
        return go.Scatter(x=(cols * spacing[u_ax]).astype(np.float32), y=(rows * spacing[v_ax]).astype(np.float32),
                          mode="markers", name=name, hoverinfo="skip", showlegend=True,
                          marker=dict(symbol="square", size=3, color=colour, **marker))

    def _traces(k: int) -> list:
        out = [go.Heatmap(z=_plane(grey, ax, k), colorscale="gray", zmin=0, zmax=255, showscale=False,
                          name="image", dx=spacing[u_ax], dy=spacing[v_ax], x0=0.0, y0=0.0, hoverinfo="skip")]
        if lab_edge is not None:
            out.append(_contour(lab_edge, k, "labels"))
        if pred_edge is not None:
            out.append(_contour(pred_edge, k, "prediction", color=PREDICTION_COLOR))
        return out

    # Open on the slice showing most of the prediction (else of the labels, else the middle one).
    focus = pred if pred is not None and pred.any() else lab if lab is not None and lab.any() else None
    start = len(indices) // 2 if focus is None else \
        int(np.argmax(np.take((focus > 0).sum(axis=(u_ax, v_ax)), indices)))
    fig = go.Figure(data=_traces(indices[start]),
                    frames=[go.Frame(data=_traces(k), name=str(k)) for k in indices])
    steps = [dict(method="animate", label=str(k), args=[[str(k)], dict(mode="immediate", frame=dict(
        duration=0, redraw=True), transition=dict(duration=0))]) for k in indices]
    names = "XYZ"
    fig.update_layout(
        title=title, height=520, margin=dict(l=40, r=20, t=50 if title else 20, b=40),
        sliders=[dict(active=start, steps=steps, currentvalue=dict(prefix=f"{axis} slice {names[ax]} = "))],
        xaxis=dict(title=f"{names[u_ax]} (mm)", constrain="domain",
                   range=[-0.5 * spacing[u_ax], (img.shape[u_ax] - 0.5) * spacing[u_ax]]),
        yaxis=dict(title=f"{names[v_ax]} (mm)", scaleanchor="x", scaleratio=1.0, constrain="domain",
                   range=[-0.5 * spacing[v_ax], (img.shape[v_ax] - 0.5) * spacing[v_ax]]),
    )
    return fig

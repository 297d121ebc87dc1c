"""Slices of a scan with label, reference and prediction outlines: the one slice renderer of the kit.

:func:`slice_traces` turns one 2-D plane into plotly traces (grey image, one outline trace per
label value with its name, the reference outline in green, the prediction outline in cyan, as
fixed by :mod:`sapkit.plotting.colors`). Every figure that shows image slices draws them through
it: the slider viewer :func:`slice_figure`, the three-plane :func:`label_overlay_figure`, the
image panels of :func:`image_panels_figure`, the lesion gallery and the lesion explorer.

Plane convention: a plane normal to ``axis`` is ``np.take(volume, index, axis).T``, so rows run
along the second remaining axis (plotly's y) and columns along the first (plotly's x), both in
mm from the first voxel centre. Outlines are the in-plane boundary voxels (4-neighbourhood) drawn
as small squares.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError
from sapkit.imaging.window import display_window, to_grey
from sapkit.plotting.colors import PREDICTION_COLOR, REFERENCE_COLOR, label_legend

__all__ = ["label_boundaries", "slice_traces", "slice_figure", "label_overlay_figure", "image_panels_figure"]

_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
_NAMES = "XYZ"


# ----------------------------------------------------------------------------- validation
def _check_inputs(image: npt.ArrayLike, labels: npt.ArrayLike | None, prediction: npt.ArrayLike | None,
                  spacing_mm: float | Sequence[float], channel: int, reference: npt.ArrayLike | None = None,
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[float, float, float], np.ndarray | None]:
    """Validate a scan and its masks; returns ``(image, labels, prediction, spacing, reference)``."""
    image = np.asarray(image)
    if image.ndim == 4:
        if not 0 <= channel < image.shape[0]:
            raise ConfigError(f"channel {channel} does not exist in an image of shape {image.shape} "
                                   f"(C, X, Y, Z); pass channel in 0..{image.shape[0] - 1}.")
        image = image[channel]
    if image.ndim != 3:
        raise ConfigError(f"image must be (X, Y, Z) or (C, X, Y, Z), got shape {image.shape}; "
                               "pass one volume, e.g. case.image.")
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)) if np.ndim(spacing_mm) == 0 \
        else np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ConfigError(f"spacing_mm must be 3 positive numbers (mm), got {spacing_mm!r}; "
                               "pass case.spacing_mm.")
    out = []
    for name, arr in (("labels", labels), ("prediction", prediction), ("reference", reference)):
        if arr is None:
            out.append(None)
            continue
        arr = np.asarray(arr)
        if arr.shape != image.shape:
            raise ConfigError(f"{name} shape {arr.shape} ≠ image shape {image.shape}; "
                                   "resample both onto the same grid first.")
        if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
            raise ConfigError(f"{name} must be an integer or bool label map, got dtype {arr.dtype}; "
                                   "threshold a probability map first (prob_map >= threshold).")
        out.append(arr.astype(np.int16))
    return image.astype(np.float32, copy=False), out[0], out[1], tuple(float(s) for s in spacing), out[2]


def label_boundaries(label_map: npt.NDArray, *, axis: int) -> np.ndarray:
    """Voxels of a label map on the in-plane boundary of their region (4-neighbourhood).

    Parameters
    ----------
    label_map : (X, Y, Z) int array
    axis : int
        Slicing axis; boundaries are computed within planes normal to it. A region touching
        the border of the plane is closed there.

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
        edge[tuple(first)] = True
        edge[tuple(last)] = True
    return np.where(edge & (lab != 0), lab, 0).astype(lab.dtype)


def _plane(volume: np.ndarray | None, axis: int, index: int) -> np.ndarray | None:
    """2-D plane normal to ``axis``, transposed so rows run along the second remaining axis (None stays None)."""
    return None if volume is None else np.take(volume, index, axis=axis).T


# ----------------------------------------------------------------------------- the renderer
def slice_traces(image: npt.ArrayLike, *, spacing_mm: float | Sequence[float] = 1.0,
                 window: tuple[float, float] | None = None, labels: npt.ArrayLike | None = None,
                 label_values: Sequence[int] | None = None, label_names: Mapping[int, str] | None = None,
                 reference: npt.ArrayLike | None = None, prediction: npt.ArrayLike | None = None,
                 marker_px: int = 3, showlegend: bool = True, label_colors: Mapping[int, str] | None = None) -> list:
    """Plotly traces of one image plane with its outlines.

    Parameters
    ----------
    image : (V, U) float array
        The plane (rows along plotly's y); see the module docstring for the convention.
    spacing_mm : float or (du, dv)
        Pixel size in mm along x (columns) and y (rows).
    window : (low, high), optional
        Intensities mapped to black and white; default the kit's display window of the plane
        (:func:`sapkit.imaging.window.display_window`: its 1st and 99th percentiles).
    labels : (V, U) int array, optional
        Label map: one outline trace per value of ``label_values`` in :func:`~sapkit.plotting.colors.label_color`.
    label_values : sequence of int, optional
        Values given a trace (default the non-zero values in ``labels``); fix them when the
        number of traces must not change between planes (slider frames).
    label_names : mapping int → str, optional
        Legend names, e.g. ``SKELETON_CLASSES``.
    reference, prediction : (V, U) bool or int array, optional
        Reference (green) and predicted (cyan) masks, any non-zero value; a trace is returned
        whenever the mask is given, empty or not.
    marker_px : int
        Size of the outline squares in screen pixels.
    showlegend : bool
        Whether the outline traces appear in the legend (one panel of a multi-panel figure).
    label_colors : mapping int → colour, optional
        Colours of label values (e.g. ``sapkit.plotting.colors.outcome_value_colors()``); default ``label_color``.

    Returns
    -------
    list of plotly traces
        ``[image heatmap (uint8 grey), one Scatter per label value, reference Scatter, prediction Scatter]``;
        the label traces are named after the labels, the others ``image``, ``reference``, ``prediction``.
    """
    import plotly.graph_objects as go

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ConfigError(f"slice_traces draws one 2-D plane, got shape {img.shape}; take a slice first.")
    du, dv = (float(spacing_mm),) * 2 if np.ndim(spacing_mm) == 0 else tuple(float(s) for s in spacing_mm)
    grey = to_grey(img, display_window(img) if window is None else window)
    traces = [go.Heatmap(z=grey, colorscale="gray", zmin=0, zmax=255, showscale=False, name="image",
                         dx=du, dy=dv, x0=0.0, y0=0.0, hoverinfo="skip")]

    def _outline(mask: npt.ArrayLike, name: str, color: str, group: str) -> Any:
        edge = label_boundaries(np.asarray(mask)[np.newaxis], axis=0)[0]
        rows, cols = np.nonzero(edge)
        return go.Scatter(x=(cols * du).astype(np.float32), y=(rows * dv).astype(np.float32), mode="markers",
                          name=name, legendgroup=group, showlegend=showlegend, hoverinfo="name",
                          marker=dict(symbol="square", size=marker_px, color=color))

    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != img.shape:
            raise ConfigError(f"labels plane shape {lab.shape} ≠ image plane shape {img.shape}; use one grid.")
        values = np.unique(lab) if label_values is None else label_values
        for value, name, color in label_legend(values, label_names, label_colors):
            traces.append(_outline(lab == value, name, color, f"label {value}"))
    for mask, name, color in ((reference, "reference", REFERENCE_COLOR), (prediction, "prediction", PREDICTION_COLOR)):
        if mask is not None:
            if np.shape(mask) != img.shape:
                raise ConfigError(f"{name} plane shape {np.shape(mask)} ≠ image plane shape {img.shape}; use one grid.")
            traces.append(_outline(np.asarray(mask) != 0, name, color, name))
    return traces


# ----------------------------------------------------------------------------- figures
def slice_figure(image: npt.ArrayLike, labels: npt.ArrayLike | None = None, prediction: npt.ArrayLike | None = None,
                 *, spacing_mm: float | Sequence[float], reference: npt.ArrayLike | None = None,
                 label_names: Mapping[int, str] | None = None, axis: str = "coronal", channel: int = 0,
                 max_slices: int = 64, title: str | None = None, focus_index: int | None = None,
                 label_colors: Mapping[int, str] | None = None):
    """Static plotly slice viewer: a slider over slices with label, reference and prediction outlines.

    Parameters
    ----------
    image : (X, Y, Z) or (C, X, Y, Z) float array
        RAS voxel order.
    labels : (X, Y, Z) int array, optional
        Label map, one named outline per value (``label_names``, e.g. ``SKELETON_CLASSES``).
    prediction, reference : (X, Y, Z) int or bool array, optional
        Predicted mask (cyan outline) and reference mask (green outline).
    spacing_mm : float or sequence of 3 float
        Voxel size in mm; axes are drawn in mm with equal aspect.
    label_names : mapping int → str, optional
    axis : {"coronal", "axial", "sagittal"}
        Slicing direction.
    channel : int
        Channel shown when ``image`` is 4D.
    max_slices : int
        At most this many evenly spaced slices are stored (keeps the figure small).
    title : str, optional

    focus_index : int, optional
        Slice (voxel index along ``axis``) shown first; default the slice with the most prediction/lesion voxels.
    label_colors : mapping int → colour, optional
        Colours of label values, as in :func:`slice_traces`.

    Returns
    -------
    plotly.graph_objects.Figure
        The traces of :func:`slice_traces` and one frame per stored slice. It opens on the
        slice with most predicted voxels (else reference, else label voxels, else the middle
        slice). Export with ``fig.write_html(path, auto_play=False)`` (plotly otherwise plays
        the frames once when the page opens).

    Raises
    ------
    ConfigError
        Wrong shapes, dtypes, spacing or channel.
    ConfigError
        Unknown ``axis`` or ``max_slices`` < 1.
    """
    import plotly.graph_objects as go

    if axis not in _AXES:
        raise ConfigError(f"axis must be one of {tuple(_AXES)}, got {axis!r}.")
    if max_slices < 1:
        raise ConfigError(f"max_slices must be ≥ 1, got {max_slices}.")
    img, lab, pred, spacing, ref = _check_inputs(image, labels, prediction, spacing_mm, channel, reference)
    ax = _AXES[axis]
    u_ax, v_ax = [a for a in range(3) if a != ax]
    n = img.shape[ax]
    indices = np.unique(np.linspace(0, n - 1, min(n, max_slices)).round().astype(int))
    window = display_window(img)
    values = None if lab is None else np.unique(lab)

    def _traces(k: int) -> list:
        return slice_traces(_plane(img, ax, k), spacing_mm=(spacing[u_ax], spacing[v_ax]), window=window,
                            labels=_plane(lab, ax, k), label_values=values, label_names=label_names,
                            reference=_plane(ref, ax, k), prediction=_plane(pred, ax, k), label_colors=label_colors)

    focus = next((m for m in (pred, ref, lab) if m is not None and m.any()), None)
    start = len(indices) // 2 if focus is None else \
        int(np.argmax(np.take((focus > 0).sum(axis=(u_ax, v_ax)), indices)))
    if focus_index is not None:  # e.g. a chosen lesion's centroid slice
        start = int(np.argmin(np.abs(indices - int(focus_index))))
    fig = go.Figure(data=_traces(indices[start]),
                    frames=[go.Frame(data=_traces(k), name=str(k)) for k in indices])
    steps = [dict(method="animate", label=str(k), args=[[str(k)], dict(mode="immediate", frame=dict(
        duration=0, redraw=True), transition=dict(duration=0))]) for k in indices]
    fig.update_layout(
        title=title, height=520, margin=dict(l=40, r=20, t=50 if title else 20, b=40),
        legend=dict(itemsizing="constant"),  # legend squares readable, not the outline's 3 px
        sliders=[dict(active=start, steps=steps, currentvalue=dict(prefix=f"{axis} slice {_NAMES[ax]} = "))],
        xaxis=dict(title=f"{_NAMES[u_ax]} (mm)", constrain="domain",
                   range=[-0.5 * spacing[u_ax], (img.shape[u_ax] - 0.5) * spacing[u_ax]]),
        yaxis=dict(title=f"{_NAMES[v_ax]} (mm)", scaleanchor="x", scaleratio=1.0, constrain="domain",
                   range=[-0.5 * spacing[v_ax], (img.shape[v_ax] - 0.5) * spacing[v_ax]]),
    )
    return fig


def label_overlay_figure(image: npt.ArrayLike, labels: npt.ArrayLike | None = None, *,
                         spacing_mm: float | Sequence[float] = 1.0, reference: npt.ArrayLike | None = None,
                         prediction: npt.ArrayLike | None = None, label_names: Mapping[int, str] | None = None,
                         point: Sequence[int] | None = None, channel: int = 0, title: str | None = None):
    """Coronal, sagittal and axial slices through one voxel, with named label outlines.

    Parameters
    ----------
    image : (X, Y, Z) or (C, X, Y, Z) float array
    labels : (X, Y, Z) int array, optional
        Label map; each value is one legend entry named by ``label_names`` (e.g. ``SKELETON_CLASSES``).
    spacing_mm : float or sequence of 3 float
        Voxel size in mm (axes in mm, equal aspect).
    reference, prediction : (X, Y, Z) int or bool array, optional
        Green and cyan outlines.
    point : (3,) int, optional
        Voxel the three planes pass through (default: the centre of the volume).
    channel : int
        Channel shown when ``image`` is 4D.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        Three panels of :func:`slice_traces`; the legend (first panel's traces) names every
        label value present in the volume, in label order.
    """
    from plotly.subplots import make_subplots

    img, lab, pred, spacing, ref = _check_inputs(image, labels, prediction, spacing_mm, channel, reference)
    p = tuple(s // 2 for s in img.shape) if point is None else tuple(int(v) for v in point)
    if len(p) != 3 or not all(0 <= v < s for v, s in zip(p, img.shape)):
        raise ConfigError(f"point {point!r} is not a voxel of an image of shape {img.shape}; pass 3 indices inside it.")
    window, values = display_window(img), (None if lab is None else np.unique(lab))
    views = ("coronal", "sagittal", "axial")
    fig = make_subplots(rows=1, cols=3, subplot_titles=views, horizontal_spacing=0.04)
    for col, name in enumerate(views, start=1):
        ax = _AXES[name]
        u_ax, v_ax = [a for a in range(3) if a != ax]
        for trace in slice_traces(_plane(img, ax, p[ax]), spacing_mm=(spacing[u_ax], spacing[v_ax]), window=window,
                                  labels=_plane(lab, ax, p[ax]), label_values=values, label_names=label_names,
                                  reference=_plane(ref, ax, p[ax]), prediction=_plane(pred, ax, p[ax]),
                                  showlegend=col == 1):
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(title_text=f"{_NAMES[u_ax]} (mm)", row=1, col=col)
        fig.update_yaxes(title_text=f"{_NAMES[v_ax]} (mm)", scaleanchor=f"x{'' if col == 1 else col}", scaleratio=1,
                         row=1, col=col)
    fig.update_layout(title=title, height=440, margin=dict(l=10, r=10, t=60, b=10), template="plotly_white",
                      legend=dict(itemsizing="constant"))
    return fig


def _as_volume(array: Any, name: str, channel: int) -> np.ndarray:
    """A (X, Y, Z) float array from an array or CPU tensor of shape (X, Y, Z), (C, X, Y, Z) or (1, C, X, Y, Z)."""
    arr = np.asarray(array, dtype=np.float32)
    while arr.ndim > 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 4:
        if not 0 <= channel < arr.shape[0]:
            raise ConfigError(f"panel {name!r}: channel {channel} does not exist in shape {arr.shape}.")
        arr = arr[channel]
    if arr.ndim != 3:
        raise ConfigError(f"panel {name!r} must be (X, Y, Z), (C, X, Y, Z) or (1, C, X, Y, Z), got shape {arr.shape}.")
    return arr


def image_panels_figure(panels: Mapping[str, Any], *, axis: str = "axial", index: int | None = None,
                        channel: int = 0, window: tuple[float, float] | None = None,
                        spacing_mm: float | Sequence[float] = 1.0, title: str | None = None):
    """Side-by-side grey slices of several volumes of one shape (e.g. a patch and its corrupted copies).

    Parameters
    ----------
    panels : mapping name → array or CPU tensor
        Each (X, Y, Z), (C, X, Y, Z) or (1, C, X, Y, Z); the name is the panel title.
    axis : {"coronal", "axial", "sagittal"}
    index : int, optional
        Slice index along ``axis`` (default the middle slice).
    channel : int
        Channel shown of 4-D/5-D panels (0 = T1).
    window : (low, high), optional
        One grey window for all panels (default: 1st–99th percentile over all panels), so
        intensities compare across panels.
    spacing_mm : float or sequence of 3 float
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        One heatmap (:func:`slice_traces`) per panel, titled by its name.
    """
    from plotly.subplots import make_subplots

    if axis not in _AXES:
        raise ConfigError(f"axis must be one of {tuple(_AXES)}, got {axis!r}.")
    if not panels:
        raise ConfigError("image_panels_figure needs at least one panel; pass {name: volume}.")
    volumes = {name: _as_volume(v, name, channel) for name, v in panels.items()}
    shapes = {v.shape for v in volumes.values()}
    if len(shapes) != 1:
        raise ConfigError(f"panels have different shapes {sorted(shapes)}; pass volumes of one grid.")
    ax = _AXES[axis]
    shape = shapes.pop()
    k = shape[ax] // 2 if index is None else int(index)
    if not 0 <= k < shape[ax]:
        raise ConfigError(f"slice index {index} is outside 0..{shape[ax] - 1} along the {axis} axis.")
    spacing = (float(spacing_mm),) * 3 if np.ndim(spacing_mm) == 0 else tuple(float(s) for s in spacing_mm)
    u_ax, v_ax = [a for a in range(3) if a != ax]
    window = window or display_window(np.stack(list(volumes.values())))
    fig = make_subplots(rows=1, cols=len(volumes), subplot_titles=list(volumes), horizontal_spacing=0.02)
    for col, volume in enumerate(volumes.values(), start=1):
        for trace in slice_traces(_plane(volume, ax, k), spacing_mm=(spacing[u_ax], spacing[v_ax]), window=window):
            fig.add_trace(trace, row=1, col=col)
        fig.update_yaxes(scaleanchor=f"x{'' if col == 1 else col}", scaleratio=1, row=1, col=col)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=title, height=320, margin=dict(l=10, r=10, t=60, b=10), template="plotly_white",
                      legend=dict(itemsizing="constant"))
    return fig

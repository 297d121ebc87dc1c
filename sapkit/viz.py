"""3D views of scans, label maps and predictions: one :func:`view` call for every notebook.

Three backends, chosen by :func:`select_backend`:

``ipyniivue``
    The offline interactive default. Its viewer (NiiVue, WebGL2) is bundled inside the Python
    wheel, so it renders in JupyterLab 4 without network: three planes plus a 3D render, label
    maps in discrete colours. Volumes are sent from memory as gzipped NIfTI bytes.
``itkwidgets``
    Optional (``pip install "itkwidgets[lab]==1.0a55" ngff-zarr==0.32.2``). Its viewer is
    downloaded by the *browser* from the network when the cell runs; if that fails the widget
    never becomes ready and itkwidgets blocks the cells that follow. It is therefore never
    chosen automatically in a headless run (papermill, nbclient) or without network.
``plotly``
    A static slice viewer (slider over slices, label contours). Everything is stored in the
    figure, so it survives HTML export and headless execution: the choice of ``auto`` there.
"""

from __future__ import annotations

import gzip
import importlib.util
import socket
import sys
import threading
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, MetricInputError

__all__ = [
    "BACKENDS",
    "LABEL_COLORS",
    "PREDICTION_COLOR",
    "is_headless",
    "select_backend",
    "view",
    "slice_figure",
    "nifti_bytes",
    "label_boundaries",
]

BACKENDS = ("ipyniivue", "itkwidgets", "plotly")

#: Colour of label value ``k`` is ``LABEL_COLORS[(k - 1) % len(LABEL_COLORS)]``; 0 is transparent.
LABEL_COLORS: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
)
#: Colour of a predicted mask (any non-zero value) in every backend.
PREDICTION_COLOR = "#00e5ff"

_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
_INSTALL_HINT = {
    "ipyniivue": 'pip install "sapkit[lab]" (ipyniivue==2.4.4)',
    "itkwidgets": 'pip install "itkwidgets[lab]==1.0a55" ngff-zarr==0.32.2',
    "plotly": "pip install plotly",
}
_ITK_VIEWER_HOST = "ipfs.dweb.link"


# ----------------------------------------------------------------------------- backend choice
def is_headless() -> bool:
    """Whether no person's browser is attached to the code running now.

    Returns
    -------
    bool
        ``True`` when no IPython kernel is running (plain Python, pytest, a script), or when the
        request the kernel is executing carries no ``metadata.cellId``. JupyterLab 4 and
        Notebook 7 send the id of the cell they run (checked by ``tests/test_browser.py``);
        nbclient, and therefore papermill and ``sapkit reproduce``, do not (checked by a real
        papermill run in ``tests/test_viz.py``).

    Notes
    -----
    Whether ``papermill``/``nbclient`` is *imported* says nothing: they always drive a kernel in
    another process, and a person may import them in a live notebook. The rule errs towards
    ``True``: a frontend that omits the cell id (Voilà, some IDEs) gets the static plotly view,
    which is safe; a wrong ``False`` could hang a headless run.
    """
    parent = _kernel_parent()
    if parent is None:
        return True
    metadata = parent.get("metadata") or {}
    return not metadata.get("cellId")


def _kernel_parent() -> dict[str, Any] | None:
    """The message the kernel is answering now, or ``None`` outside an IPython kernel."""
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return None
    shell = ipython_mod.get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return None
    try:
        return kernel.get_parent("shell") or {}
    except TypeError:  # ipykernel < 6.0 had no channel argument
        return kernel.get_parent() or {}


def _network_reachable(host: str = _ITK_VIEWER_HOST, *, timeout_s: float = 1.5) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout_s`` (DNS included)."""
    result: list[bool] = []

    def _probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=_probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])


def _installed_backends() -> set[str]:
    found = {name for name in ("ipyniivue", "plotly") if importlib.util.find_spec(name)}
    if importlib.util.find_spec("itkwidgets") and importlib.util.find_spec("ngff_zarr"):
        found.add("itkwidgets")
    return found


def _itk_lab_extension_present() -> bool:
    """In a kernel, itkwidgets refuses to import without its JupyterLab extension."""
    return importlib.util.find_spec("imjoy_jupyterlab_extension") is not None


def select_backend(backend: str = "auto", *, headless: bool | None = None, network: bool | None = None,
                   installed: Iterable[str] | None = None) -> str:
    """Choose the viewer backend for :func:`view`.

    Parameters
    ----------
    backend : {"auto", "ipyniivue", "itkwidgets", "plotly"}
        A named backend is returned as is (after checking it is installed).
    headless : bool, optional
        Whether no browser is attached; detected with :func:`is_headless` when ``None``.
    network : bool, optional
        Whether the internet is reachable; probed (≤ 2 s) only when ``auto`` would need it.
    installed : iterable of str, optional
        Backends importable here; detected when ``None`` (``auto`` then also requires
        itkwidgets' JupyterLab extension, without which it cannot import in a kernel).

    Returns
    -------
    str
        One of :data:`BACKENDS`.

    Raises
    ------
    ConfigError
        Unknown backend name, or a named backend that is not installed.

    Notes
    -----
    ``auto``: headless → ``plotly``; otherwise ``ipyniivue`` if installed; otherwise
    ``itkwidgets`` if installed and the network is reachable; otherwise ``plotly``.
    ``auto`` therefore never returns ``itkwidgets`` in a headless run or without network.

    Examples
    --------
    >>> select_backend("auto", headless=True, network=True, installed=BACKENDS)
    'plotly'
    >>> select_backend("auto", headless=False, network=True, installed=BACKENDS)
    'ipyniivue'
    >>> select_backend("auto", headless=False, network=False, installed=("itkwidgets", "plotly"))
    'plotly'
    """
    if backend not in ("auto", *BACKENDS):
        raise ConfigError(f"unknown viewer backend {backend!r}; expected 'auto' or one of {BACKENDS}.")
    available = set(installed) if installed is not None else _installed_backends()
    if backend != "auto":
        if backend not in available:
            raise ConfigError(f"viewer backend {backend!r} is not installed here; "
                              f"install it with `{_INSTALL_HINT[backend]}` or use backend='auto'.")
        return backend
    if headless is None:
        headless = is_headless()
    if headless:
        return "plotly"
    if "ipyniivue" in available:
        return "ipyniivue"
    if "itkwidgets" in available and (installed is not None or _itk_lab_extension_present()):
        if network is None:
            network = _network_reachable()
        if network:
            return "itkwidgets"
    return "plotly"


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


# ----------------------------------------------------------------------------- ipyniivue
def nifti_bytes(volume: npt.NDArray, *, spacing_mm: Sequence[float], compress: bool = True) -> bytes:
    """Serialise a volume as NIfTI-1 bytes in memory (RAS, origin 0, qform/sform code 1).

    Parameters
    ----------
    volume : (X, Y, Z) array
        Voxel values; the dtype is kept.
    spacing_mm : sequence of 3 float
        Voxel size in mm along X, Y, Z.
    compress : bool
        Gzip the bytes (``.nii.gz``); NiiVue reads both.

    Returns
    -------
    bytes
        The file content.

    Examples
    --------
    >>> import nibabel as nib
    >>> raw = nifti_bytes(np.zeros((2, 3, 4), np.uint8), spacing_mm=(1.0, 2.0, 3.0), compress=False)
    >>> [float(z) for z in nib.Nifti1Image.from_bytes(raw).header.get_zooms()]
    [1.0, 2.0, 3.0]
    """
    import nibabel as nib

    affine = np.diag([*map(float, spacing_mm), 1.0])
    img = nib.Nifti1Image(np.ascontiguousarray(volume), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=1) if compress else raw


def _hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _label_lut(values: Sequence[int], names: Mapping[int, str] | None, *, single: str | None = None) -> dict:
    """NiiVue ``colormap_label`` dict: value 0 transparent, each value its colour."""
    lut: dict[str, list] = {"R": [0], "G": [0], "B": [0], "A": [0], "I": [0], "labels": ["background"]}
    for value in values:
        if value == 0:
            continue
        r, g, b = _hex_rgb(single or LABEL_COLORS[(value - 1) % len(LABEL_COLORS)])
        for key, item in zip("RGBAI", (r, g, b, 255, int(value))):
            lut[key].append(item)
        lut["labels"].append((names or {}).get(int(value), str(int(value))))
    return lut


def _view_ipyniivue(image, labels, prediction, spacing, *, label_names, height_px):
    import ipyniivue

    nv = ipyniivue.NiiVue(height=height_px, slice_type=ipyniivue.SliceType.MULTIPLANAR,
                          multiplanar_show_render=ipyniivue.ShowRender.ALWAYS, is_colorbar=False,
                          back_color=(0.0, 0.0, 0.0, 1.0))
    low, high = np.percentile(image, (1.0, 99.0))
    volumes = [ipyniivue.Volume(data=nifti_bytes(image, spacing_mm=spacing), name="image.nii.gz",
                                colormap="gray", cal_min=float(low), cal_max=float(max(high, low + 1e-6)))]
    for arr, name, opacity, single in ((labels, "labels.nii.gz", 0.5, None),
                                       (prediction, "prediction.nii.gz", 0.7, PREDICTION_COLOR)):
        if arr is None:
            continue
        vol = ipyniivue.Volume(data=nifti_bytes(arr, spacing_mm=spacing), name=name, opacity=opacity)
        vol.set_colormap_label(_label_lut(np.unique(arr).tolist(), label_names, single=single))
        volumes.append(vol)
    nv.load_volumes(volumes)
    return nv


# ----------------------------------------------------------------------------- itkwidgets
def _itkwidgets_kwargs(image, labels, prediction, spacing) -> dict[str, Any]:
    """Inputs of ``itkwidgets.view``: NGFF images carrying the spacing (axes z, y, x)."""
    from ngff_zarr import to_ngff_image

    def _ngff(arr: np.ndarray, name: str):
        # NGFF orders axes slowest first: our (X, Y, Z) array becomes (z, y, x).
        return to_ngff_image(np.ascontiguousarray(arr.transpose(2, 1, 0)), dims=("z", "y", "x"),
                             scale={"x": spacing[0], "y": spacing[1], "z": spacing[2]},
                             translation={"x": 0.0, "y": 0.0, "z": 0.0}, name=name)

    kwargs: dict[str, Any] = {"image": _ngff(image, "image"), "ui_collapsed": True}
    label_map = labels
    if prediction is not None:
        # itkwidgets shows one label image: the prediction takes the value after the labels.
        pred_value = (int(labels.max()) + 1) if labels is not None else 1
        label_map = (labels.copy() if labels is not None else np.zeros_like(prediction))
        label_map[prediction > 0] = pred_value
    if label_map is not None:
        kwargs["label_image"] = _ngff(label_map, "labels")
    return kwargs


def _view_itkwidgets(image, labels, prediction, spacing):
    import itkwidgets

    return itkwidgets.view(**_itkwidgets_kwargs(image, labels, prediction, spacing))


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


# ----------------------------------------------------------------------------- the one call
def view(image: npt.ArrayLike, labels: npt.ArrayLike | None = None, prediction: npt.ArrayLike | None = None,
         *, spacing_mm: float | Sequence[float], backend: str = "auto", channel: int = 0,
         axis: str = "coronal", label_names: Mapping[int, str] | None = None, height_px: int = 480,
         title: str | None = None):
    """Show a scan with its label map and a prediction, in the best viewer available.

    Parameters
    ----------
    image : (X, Y, Z) or (C, X, Y, Z) float array
        The scan, RAS voxel order (as :func:`sapkit.data.load_cases` returns it).
    labels : (X, Y, Z) int or bool array, optional
        Label map shown in discrete colours (value 0 transparent).
    prediction : (X, Y, Z) int or bool array, optional
        Predicted mask, shown in :data:`PREDICTION_COLOR`.
    spacing_mm : float or sequence of 3 float
        Voxel size in mm along X, Y, Z.
    backend : {"auto", "ipyniivue", "itkwidgets", "plotly"}
        See :func:`select_backend`.
    channel : int
        Channel shown when ``image`` is 4D (0 = T1, 1 = DWI b1000).
    axis : {"coronal", "axial", "sagittal"}
        Slicing direction of the plotly viewer.
    label_names : mapping int → str, optional
        Names shown by ipyniivue, e.g. ``sapkit.labelmaps.SKELETON_CLASSES``.
    height_px : int
        Height of the ipyniivue canvas in pixels.
    title : str, optional
        Title of the plotly figure.

    Returns
    -------
    ipyniivue.NiiVue or itkwidgets.viewer.Viewer or plotly.graph_objects.Figure
        Display it by leaving it as the last expression of a cell.

    Raises
    ------
    MetricInputError
        Wrong shapes, dtypes, spacing or channel.
    ConfigError
        Unknown or uninstalled backend.
    """
    chosen = select_backend(backend)
    img, lab, pred, spacing = _check_inputs(image, labels, prediction, spacing_mm, channel)
    if chosen == "ipyniivue":
        return _view_ipyniivue(img, lab, pred, spacing, label_names=label_names, height_px=height_px)
    if chosen == "itkwidgets":
        return _view_itkwidgets(img, lab, pred, spacing)
    return slice_figure(img, lab, pred, spacing_mm=spacing, axis=axis, title=title)

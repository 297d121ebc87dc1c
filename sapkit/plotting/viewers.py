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
    A static slice viewer (slider over slices, named label outlines):
    :func:`sapkit.plotting.slices.slice_figure`. Everything is stored in the figure, so it
    survives HTML export and headless execution: the choice of ``auto`` there.

Every backend uses the colours of :mod:`sapkit.plotting.colors` (label value ``k`` in
``label_color(k)``, the prediction in ``PREDICTION_COLOR``, lesion outcomes in ``OUTCOME_COLORS``
with a legend on the viewer).
"""

from __future__ import annotations

import gzip
import importlib.util
import socket
import threading
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError
from sapkit.imaging.window import RENDER_PERCENTILES, display_window
from sapkit.jobs.progress import is_headless
from sapkit.plotting.colors import (PREDICTION_COLOR, REFERENCE_COLOR, label_color, label_legend, outcome_names,
                                   outcome_value_colors)
from sapkit.plotting.slices import _check_inputs, slice_figure

__all__ = ["BACKENDS", "select_backend", "view", "nifti_bytes", "focus_fraction", "legend_html"]

BACKENDS = ("ipyniivue", "itkwidgets", "plotly")

_INSTALL_HINT = {
    "ipyniivue": 'pip install "sapkit[lab]" (ipyniivue==2.4.4)',
    "itkwidgets": 'pip install "itkwidgets[lab]==1.0a55" ngff-zarr==0.32.2',
    "plotly": "pip install plotly",
}
_ITK_VIEWER_HOST = "ipfs.dweb.link"


# ----------------------------------------------------------------------------- backend choice
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
        Whether no browser is attached; detected with :func:`sapkit.jobs.progress.is_headless` when ``None``.
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
    from sapkit.io.nifti import nifti_image

    raw = nifti_image(np.asarray(volume), np.diag([*map(float, spacing_mm), 1.0])).to_bytes()
    return gzip.compress(raw, compresslevel=1) if compress else raw


def _hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _label_lut(values: Sequence[int], names: Mapping[int, str] | None, *, single: str | None = None,
               colors: Mapping[int, str] | None = None) -> dict:
    """NiiVue ``colormap_label`` dict: value 0 transparent, each value its colour."""
    lut: dict[str, list] = {"R": [0], "G": [0], "B": [0], "A": [0], "I": [0], "labels": ["background"]}
    for value in values:
        if value == 0:
            continue
        r, g, b = _hex_rgb(single or (colors or {}).get(int(value)) or label_color(value))
        for key, item in zip("RGBAI", (r, g, b, 255, int(value))):
            lut[key].append(item)
        lut["labels"].append((names or {}).get(int(value), str(int(value))))
    return lut


def legend_html(entries: Sequence[tuple[str, str]], *, title: str = "") -> str:
    """A one-line HTML legend: a 14 px colour square per ``(name, colour)`` entry (class ``sapkit-legend``).

    Examples
    --------
    >>> "background:#00e5ff" in legend_html([("true positive", "#00e5ff")])
    True
    """
    import html

    items = "".join(f"<span style='margin-right:14px;white-space:nowrap'><span style='display:inline-block;width:14px;"
                    f"height:14px;background:{c};border:1px solid #333;vertical-align:middle;margin-right:5px'></span>"
                    f"{html.escape(n)}</span>" for n, c in entries)
    head = f"<b>{html.escape(title)}</b> " if title else ""
    return f"<div class='sapkit-legend' style='font-size:13px;line-height:20px;margin:4px 0'>{head}{items}</div>"


def _outcome_legend(outcomes: np.ndarray, *, reference: bool) -> str:
    """The three outcome colours (those absent from this scan say so), then the reference's green."""
    present = set(np.unique(outcomes).tolist())
    entries = [(name + ("" if k in present else " (none here)"), color)
               for k, name, color in label_legend(range(1, 4), outcome_names(), outcome_value_colors())]
    return legend_html(entries + ([("reference not covered", REFERENCE_COLOR)] if reference else []))


def focus_fraction(shape: Sequence[int], focus_vox: Sequence[float]) -> list[float]:
    """Voxel index → NiiVue crosshair position (fraction of the volume along X, Y, Z, voxel centres).

    Examples
    --------
    >>> focus_fraction((10, 20, 4), (0, 9.5, 3))
    [0.05, 0.5, 0.875]
    """
    if len(focus_vox) != 3:
        raise ConfigError(f"focus_vox must be an (X, Y, Z) voxel index, got {focus_vox!r}.")
    return [float(np.clip((float(f) + 0.5) / n, 0.0, 1.0)) for f, n in zip(focus_vox, shape)]


def _view_ipyniivue(image, labels, prediction, spacing, *, label_names, height_px, focus_vox=None, reference=None,
                    outcomes=None):
    import ipyniivue

    # is_alpha_clip_dark: voxels below the window are transparent in the 3D render (no grey fog)
    nv = ipyniivue.NiiVue(height=height_px, slice_type=ipyniivue.SliceType.MULTIPLANAR,
                          multiplanar_show_render=ipyniivue.ShowRender.ALWAYS, is_colorbar=False,
                          back_color=(0.0, 0.0, 0.0, 1.0), is_alpha_clip_dark=True)
    low, high = display_window(image, percentiles=RENDER_PERCENTILES)  # from the median: the background clips away
    volumes = [ipyniivue.Volume(data=nifti_bytes(image, spacing_mm=spacing), name="image.nii.gz",
                                colormap="gray", cal_min=low, cal_max=high)]
    for arr, name, opacity, single in ((labels, "labels.nii.gz", 0.9, None),
                                       (reference, "reference.nii.gz", 0.9, REFERENCE_COLOR),
                                       (prediction, "prediction.nii.gz", 1.0, PREDICTION_COLOR),
                                       (outcomes, "outcomes.nii.gz", 1.0, None)):
        if arr is None:
            continue
        vol = ipyniivue.Volume(data=nifti_bytes(arr, spacing_mm=spacing), name=name, opacity=opacity)
        is_outcome = arr is outcomes
        vol.set_colormap_label(_label_lut(np.unique(arr).tolist(), outcome_names() if is_outcome else label_names,
                                          single=single, colors=outcome_value_colors() if is_outcome else None))
        volumes.append(vol)
    nv.load_volumes(volumes)
    if focus_vox is not None:
        nv.scene.crosshair_pos = focus_fraction(image.shape, focus_vox)
    if outcomes is None:
        return nv
    import ipywidgets

    legend = ipywidgets.HTML(_outcome_legend(outcomes, reference=reference is not None))
    box = ipywidgets.VBox([legend, nv])
    box.add_class("sapkit-outcome-viewer")
    box.niivue = nv  # the canvas widget, for code that needs it
    return box


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


# ----------------------------------------------------------------------------- the one call
def view(image: npt.ArrayLike, labels: npt.ArrayLike | None = None, prediction: npt.ArrayLike | None = None,
         *, spacing_mm: float | Sequence[float], backend: str = "auto", channel: int = 0,
         axis: str = "coronal", label_names: Mapping[int, str] | None = None, height_px: int = 480,
         title: str | None = None, focus_vox: Sequence[float] | None = None,
         reference: npt.ArrayLike | None = None, outcomes: npt.ArrayLike | None = None):
    """Show a scan with its label map and a prediction, in the best viewer available.

    Parameters
    ----------
    image : (X, Y, Z) or (C, X, Y, Z) float array
        The scan, RAS voxel order (as :func:`sapkit.data.cases.load_cases` returns it).
    labels : (X, Y, Z) int or bool array, optional
        Label map shown in discrete colours (value 0 transparent), one named legend entry per value.
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
        Legend names of the label values (ipyniivue and plotly), e.g.
        ``sapkit.label_maps.SKELETON_CLASSES``.
    height_px : int
        Height of the ipyniivue canvas in pixels.
    title : str, optional
        Title of the plotly figure.
    reference : (X, Y, Z) int or bool array, optional
        Reference (ground-truth) mask, shown in :data:`REFERENCE_COLOR` (instead of ``labels``).
    focus_vox : (X, Y, Z) voxel index, optional
        Where the viewer opens (ipyniivue's crosshair; the plotly slider's first slice), e.g. a
        lesion centroid; default the volume centre (plotly: the slice with the most lesion voxels).
    outcomes : (X, Y, Z) uint8 array, optional
        Lesion outcomes (``CaseOutcomes.label_map()``: 1 true positive, 2 false positive, 3 missed),
        each in its :data:`~sapkit.plotting.colors.OUTCOME_COLORS` colour with a legend on the viewer;
        instead of ``labels`` and ``prediction`` (``reference`` may come along, green underneath).

    Returns
    -------
    ipyniivue.NiiVue or itkwidgets.viewer.Viewer or plotly.graph_objects.Figure
        Display it by leaving it as the last expression of a cell. With ``outcomes``, ipyniivue's
        canvas comes in an ``ipywidgets.VBox`` under its legend (``.niivue`` is the canvas widget);
        the plotly figure names the outcomes in its legend.

    Raises
    ------
    ConfigError
        Wrong shapes, dtypes, spacing or channel.
    ConfigError
        Unknown or uninstalled backend.
    """
    chosen = select_backend(backend)
    if outcomes is not None:
        if labels is not None or prediction is not None:
            raise ConfigError("view() shows outcomes= instead of labels= and prediction=; pass only outcomes (and reference).")
        return _view_outcomes(chosen, image, outcomes, reference, spacing_mm=spacing_mm, channel=channel, axis=axis,
                              height_px=height_px, title=title, focus_vox=focus_vox)
    if reference is not None and labels is not None:
        raise ConfigError("view() shows either a label map (labels=) or a reference mask (reference=), not both.")
    img, lab, pred, spacing, _ = _check_inputs(image, labels if reference is None else reference, prediction,
                                               spacing_mm, channel)
    ref = None
    if reference is not None:
        ref, lab = (lab > 0).astype(np.uint8), None
    if chosen == "ipyniivue":
        return _view_ipyniivue(img, lab, pred, spacing, label_names=label_names, height_px=height_px,
                               focus_vox=focus_vox, reference=ref)
    if chosen == "itkwidgets":
        return _view_itkwidgets(img, lab if ref is None else ref, pred, spacing)
    index = None if focus_vox is None else int(round(float(focus_vox[{"sagittal": 0, "coronal": 1, "axial": 2}[axis]])))
    return slice_figure(img, lab, pred, spacing_mm=spacing, reference=ref, label_names=label_names, axis=axis,
                        title=title, focus_index=index)


def _view_outcomes(chosen: str, image, outcomes, reference, *, spacing_mm, channel, axis, height_px, title, focus_vox):
    """:func:`view` with an outcome map (1 true positive, 2 false positive, 3 missed)."""
    img, out, _, spacing, ref = _check_inputs(image, outcomes, None, spacing_mm, channel, reference)
    out = out.astype(np.uint8)
    if out.max(initial=0) > 3:
        raise ConfigError(f"outcomes hold values 0–3 (none, true positive, false positive, missed); got {int(out.max())}.")
    ref = None if ref is None else (ref > 0).astype(np.uint8)
    if chosen == "ipyniivue":
        return _view_ipyniivue(img, None, None, spacing, label_names=None, height_px=height_px, focus_vox=focus_vox,
                               reference=ref, outcomes=out)
    if chosen == "itkwidgets":
        return _view_itkwidgets(img, out, None, spacing)
    index = None if focus_vox is None else int(round(float(focus_vox[{"sagittal": 0, "coronal": 1, "axial": 2}[axis]])))
    return slice_figure(img, out, None, spacing_mm=spacing, reference=ref, label_names=outcome_names(), axis=axis,
                        title=title, focus_index=index, label_colors=outcome_value_colors())

"""Interactive exploration of lesion predictions: case picker, init selector, threshold slider.

The computation lives in pure functions (:func:`threshold_lesions`,
:func:`lesion_table_at_threshold`) that tests check for numbers; :class:`LesionExplorer` is a
thin ipywidgets shell that calls them and redraws a table and a plotly overlay.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.errors import MetricInputError
from sapkit.figures import INIT_ORDER, init_color
from sapkit.viz import LABEL_COLORS, label_boundaries

__all__ = [
    "LESION_TABLE_COLUMNS",
    "threshold_lesions",
    "lesion_table_at_threshold",
    "LesionExplorer",
    "lesion_explorer",
]

#: Columns of a lesion table; centroids are in mm from the centre of voxel (0, 0, 0).
LESION_TABLE_COLUMNS = ("lesion_id", "n_voxels", "volume_ml", "max_prob", "mean_prob",
                        "centroid_x_mm", "centroid_y_mm", "centroid_z_mm")
_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}


def _check_spacing(spacing_mm) -> tuple[float, float, float]:
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)) if np.ndim(spacing_mm) == 0 \
        else np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise MetricInputError(f"spacing_mm must be 3 positive numbers (mm), got {spacing_mm!r}; "
                               "pass case.spacing_mm.")
    return tuple(float(s) for s in spacing)


def _check_prob_map(prob_map: npt.ArrayLike) -> np.ndarray:
    prob = np.asarray(prob_map)
    if prob.ndim != 3:
        raise MetricInputError(f"prob_map must be (X, Y, Z), got shape {prob.shape}; pass one channel.")
    if not np.issubdtype(prob.dtype, np.floating):
        raise MetricInputError(f"prob_map must be float probabilities in [0, 1], got dtype {prob.dtype}; "
                               "pass the model's probability map, not a mask.")
    if prob.size and not np.isfinite(prob).all():
        raise MetricInputError(f"prob_map holds {int((~np.isfinite(prob)).sum())} NaN/inf voxels; values must be "
                               "finite and in [0, 1]; check the inference output.")
    if prob.size and not (prob.min() >= 0.0 and prob.max() <= 1.0):
        raise MetricInputError(f"prob_map values must be in [0, 1], got range [{prob.min():g}, {prob.max():g}]; "
                               "apply a sigmoid/softmax first.")
    return prob


def threshold_lesions(prob_map: npt.ArrayLike, threshold: float, *, spacing_mm: float | Sequence[float],
                      connectivity: int = 26, min_volume_ml: float = 0.0) -> tuple[np.ndarray, pd.DataFrame]:
    """Binarise a probability map, split it into lesions and describe each one.

    Parameters
    ----------
    prob_map : (X, Y, Z) float array in [0, 1]
        Lesion probability per voxel.
    threshold : float in (0, 1]
        Voxels with ``prob_map >= threshold`` are lesion.
    spacing_mm : float or sequence of 3 float
        Voxel size in mm along X, Y, Z.
    connectivity : {6, 18, 26}
        Neighbourhood joining voxels into one lesion (26: faces, edges and corners).
    min_volume_ml : float
        Components smaller than this (mL) are dropped.

    Returns
    -------
    component_map : (X, Y, Z) int32
        0 background, ``k`` for the voxels of lesion ``k`` of the table.
    table : DataFrame
        Columns :data:`LESION_TABLE_COLUMNS`, one row per lesion, ``lesion_id`` 1..n ordered by
        decreasing volume (ties: raster order). Empty (all columns) when nothing passes.

    Raises
    ------
    MetricInputError
        Wrong shape/dtype/range of ``prob_map``, threshold outside (0, 1], bad spacing,
        connectivity or ``min_volume_ml``.

    Examples
    --------
    >>> p = np.zeros((4, 4, 4)); p[0, 0, 0:2] = 0.9; p[3, 3, 3] = 0.6
    >>> components, table = threshold_lesions(p, 0.5, spacing_mm=(10.0, 10.0, 10.0))
    >>> table[["volume_ml", "max_prob"]].values.tolist()
    [[2.0, 0.9], [1.0, 0.6]]
    >>> int(components[0, 0, 1]), int(components[3, 3, 3])
    (1, 2)
    """
    import cc3d

    prob = _check_prob_map(prob_map)
    spacing = _check_spacing(spacing_mm)
    if not 0.0 < float(threshold) <= 1.0:
        raise MetricInputError(f"threshold must be in (0, 1], got {threshold!r}.")
    if connectivity not in (6, 18, 26):
        raise MetricInputError(f"connectivity must be 6, 18 or 26, got {connectivity!r}.")
    if not (np.isfinite(min_volume_ml) and min_volume_ml >= 0):
        raise MetricInputError(f"min_volume_ml must be ≥ 0 mL, got {min_volume_ml!r}.")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    mask = prob >= threshold
    components, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    empty = pd.DataFrame({c: pd.Series(dtype="int64" if c in ("lesion_id", "n_voxels") else "float64")
                          for c in LESION_TABLE_COLUMNS})
    if n == 0:
        return np.zeros(prob.shape, np.int32), empty
    flat_idx = np.flatnonzero(mask)
    ids = components.ravel()[flat_idx].astype(np.int64)
    values = prob.ravel()[flat_idx].astype(np.float64)
    counts = np.bincount(ids, minlength=n + 1)[1:]
    sums = np.bincount(ids, weights=values, minlength=n + 1)[1:]
    peaks = np.zeros(n + 1)
    np.maximum.at(peaks, ids, values)
    coords = np.unravel_index(flat_idx, prob.shape)
    centroids = [np.bincount(ids, weights=c, minlength=n + 1)[1:] / counts * s for c, s in zip(coords, spacing)]
    volume_ml = counts * voxel_ml
    keep = np.flatnonzero(volume_ml >= min_volume_ml)
    keep = keep[np.lexsort((keep, -counts[keep]))]  # largest first, raster order on ties
    if keep.size == 0:
        return np.zeros(prob.shape, np.int32), empty
    relabel = np.zeros(n + 1, np.int32)
    relabel[keep + 1] = np.arange(1, keep.size + 1, dtype=np.int32)
    table = pd.DataFrame({
        "lesion_id": np.arange(1, keep.size + 1, dtype=np.int64), "n_voxels": counts[keep].astype(np.int64),
        "volume_ml": volume_ml[keep], "max_prob": peaks[1:][keep], "mean_prob": sums[keep] / counts[keep],
        "centroid_x_mm": centroids[0][keep], "centroid_y_mm": centroids[1][keep],
        "centroid_z_mm": centroids[2][keep]})
    return relabel[components], table


def lesion_table_at_threshold(prob_map: npt.ArrayLike, threshold: float, *, spacing_mm: float | Sequence[float],
                              connectivity: int = 26, min_volume_ml: float = 0.0) -> pd.DataFrame:
    """Lesion table of a probability map at one threshold (the table of :func:`threshold_lesions`).

    Parameters
    ----------
    prob_map : (X, Y, Z) float array in [0, 1]
    threshold : float in (0, 1]
    spacing_mm : float or sequence of 3 float
        Voxel size in mm.
    connectivity : {6, 18, 26}
    min_volume_ml : float

    Returns
    -------
    DataFrame
        Columns :data:`LESION_TABLE_COLUMNS`; ``volume_ml = n_voxels × prod(spacing_mm) / 1000``.

    Examples
    --------
    >>> p = np.zeros((3, 3, 3), np.float32); p[1, 1, :] = 0.7
    >>> lesion_table_at_threshold(p, 0.8, spacing_mm=1.0).empty
    True
    """
    return threshold_lesions(prob_map, threshold, spacing_mm=spacing_mm, connectivity=connectivity,
                             min_volume_ml=min_volume_ml)[1]


def _overlay_colorscale(colour: str) -> list[list]:
    """0 → transparent, 1 → ``colour``."""
    clear = "rgba(0,0,0,0)"
    return [[0.0, clear], [0.5, clear], [0.5, colour], [1.0, colour]]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


class LesionExplorer:
    """Case picker + init selector + threshold slider over per-init probability maps.

    Build it with :func:`lesion_explorer`; display it by leaving it last in a cell. Every
    control change calls :meth:`update`, which recomputes the lesion table of the chosen case and
    init at the chosen threshold and redraws the overlay (a maximum-intensity projection of the
    scan with the thresholded lesions coloured and the reference lesions outlined in white).
    """

    def __init__(self, images: Mapping[str, npt.NDArray], prob_maps: Mapping[str, Mapping[str, npt.NDArray]], *,
                 spacing_mm: float | Sequence[float] | Mapping[str, Sequence[float]],
                 lesion_masks: Mapping[str, npt.NDArray] | None = None, threshold: float = 0.5,
                 connectivity: int = 26, min_volume_ml: float = 0.0, channel: int = 1, axis: str = "coronal",
                 init: str | None = None, max_rows: int = 12):
        import ipywidgets as w
        import plotly.graph_objects as go

        if axis not in _AXES:
            raise MetricInputError(f"axis must be one of {tuple(_AXES)}, got {axis!r}.")
        order = {name: i for i, name in enumerate(INIT_ORDER)}
        self.inits = sorted(prob_maps, key=lambda k: (order.get(k, len(order)), k))
        cases = [c for c in images if any(c in prob_maps[i] for i in self.inits)]
        if not cases:
            raise MetricInputError("no scan has both an image and a probability map; check the scan ids of "
                                   f"images {list(images)[:5]} and prob_maps {[list(v)[:5] for v in prob_maps.values()]}.")
        self._images, self._prob_maps, self._masks = images, prob_maps, lesion_masks or {}
        self._spacing = spacing_mm
        self._options = dict(connectivity=connectivity, min_volume_ml=min_volume_ml)
        self._channel, self._axis, self._max_rows = channel, _AXES[axis], max_rows
        self.table = pd.DataFrame(columns=LESION_TABLE_COLUMNS)
        self.comparison_table = pd.DataFrame(columns=["init", "n_lesions", "total_volume_ml"])
        self.component_map: np.ndarray | None = None

        self.case_picker = w.Dropdown(options=cases, value=cases[0], description="case")
        if init is not None and init not in self.inits:
            raise MetricInputError(f"init {init!r} has no probability maps; choose one of {self.inits}.")
        self.init_picker = w.ToggleButtons(options=self.inits, value=init or self.inits[0], description="init")
        self.threshold_slider = w.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                                              continuous_update=False, readout_format=".2f")
        self.summary = w.HTML()
        self.comparison = w.HTML()
        self.table_html = w.HTML()
        self.table_html.add_class("sapkit-lesion-table")
        self.figure = go.FigureWidget(layout=dict(height=420, width=420, margin=dict(l=10, r=10, t=30, b=10),
                                                  xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x")))
        self.figure.add_heatmap(z=[[0]], colorscale="gray", showscale=False, hoverinfo="skip", name="scan")
        self.figure.add_heatmap(z=[[0]], colorscale=_overlay_colorscale(LABEL_COLORS[0]), zmin=0, zmax=1,
                                opacity=0.65, showscale=False, hoverinfo="skip", name="lesions")
        self.figure.add_scatter(x=[], y=[], mode="markers", marker=dict(symbol="square", size=2, color="white"),
                                hoverinfo="skip", name="reference")
        controls = w.VBox([self.case_picker, self.init_picker, self.threshold_slider, self.summary,
                           self.comparison, self.table_html])
        self.widget = w.HBox([controls, self.figure])
        self.widget.add_class("sapkit-lesion-explorer")
        self.case_picker.observe(self._on_case, names="value")
        self.init_picker.observe(self._on_control, names="value")
        self.threshold_slider.observe(self._on_control, names="value")
        self._suspended = False
        self._on_case(None)

    # -- data of the chosen case ------------------------------------------------------------
    def _case_spacing(self, case: str) -> tuple[float, float, float]:
        spacing = self._spacing[case] if isinstance(self._spacing, Mapping) else self._spacing
        return _check_spacing(spacing)

    def _on_control(self, _change) -> None:
        if not self._suspended:
            self.update()

    def _on_case(self, _change) -> None:
        case = self.case_picker.value
        spacing = self._case_spacing(case)
        u_ax, v_ax = [a for a in range(3) if a != self._axis]
        image = np.asarray(self._images[case], dtype=np.float32)
        image = image[min(self._channel, image.shape[0] - 1)] if image.ndim == 4 else image
        mip = image.max(axis=self._axis).T
        low, high = np.percentile(mip, (1.0, 99.5))
        reference = self._masks.get(case)
        with self.figure.batch_update():
            self.figure.data[0].z = np.clip((mip - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)
            for trace in self.figure.data[:2]:
                trace.dx, trace.dy = spacing[u_ax], spacing[v_ax]
            rows, cols = (np.array([], int), np.array([], int))
            if reference is not None:
                projected = (np.asarray(reference) > 0).max(axis=self._axis)[np.newaxis].astype(np.int16)
                rows, cols = np.nonzero(label_boundaries(projected, axis=0)[0].T)
            self.figure.data[2].x = (cols * spacing[u_ax]).astype(np.float32)
            self.figure.data[2].y = (rows * spacing[v_ax]).astype(np.float32)
        available = [i for i in self.inits if case in self._prob_maps[i]]
        self._suspended = True
        try:
            self.init_picker.options = available
            if self.init_picker.value not in available:
                self.init_picker.value = available[0]
        finally:
            self._suspended = False
        self.update()

    # -- the one recompute ------------------------------------------------------------------
    def update(self) -> None:
        """Recompute the table and overlay for the current case, init and threshold."""
        case, init, t = self.case_picker.value, self.init_picker.value, self.threshold_slider.value
        spacing = self._case_spacing(case)
        self.component_map, self.table = threshold_lesions(self._prob_maps[init][case], t, spacing_mm=spacing,
                                                           **self._options)
        reference = self._masks.get(case)
        rows = []
        for other in self.inits:
            if case not in self._prob_maps[other]:
                continue
            if other == init:
                components, table = self.component_map, self.table
            else:
                components, table = threshold_lesions(self._prob_maps[other][case], t, spacing_mm=spacing,
                                                      **self._options)
            row = {"init": other, "n_lesions": len(table), "total_volume_ml": table["volume_ml"].sum()}
            if reference is not None:
                row["dice"] = _dice(components > 0, np.asarray(reference) > 0)
            rows.append(row)
        projected = self.component_map.max(axis=self._axis).T
        with self.figure.batch_update():
            colour = init_color(init)
            self.figure.data[1].z = (projected > 0).astype(np.uint8)  # no NaN: widget messages are JSON
            self.figure.data[1].colorscale = _overlay_colorscale(colour)
            self.figure.layout.title = f"{case} · {init} · t = {t:.2f}"
        self.summary.value = (f"<b>{len(self.table)}</b> lesions, <b>{self.table['volume_ml'].sum():.2f}</b> mL "
                              f"at threshold {t:.2f} ({init})")
        self.comparison_table = pd.DataFrame(rows)
        self.comparison.value = self.comparison_table.to_html(index=False, float_format=lambda v: f"{v:.3f}")
        shown = self.table.head(self._max_rows)[["lesion_id", "n_voxels", "volume_ml", "max_prob", "mean_prob"]]
        self.table_html.value = (shown.to_html(index=False, float_format=lambda v: f"{v:.3f}")
                                 + (f"<i>… {len(self.table) - len(shown)} more</i>"
                                    if len(self.table) > len(shown) else ""))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def lesion_explorer(images: Mapping[str, npt.NDArray], prob_maps: Mapping[str, Mapping[str, npt.NDArray]], *,
                    spacing_mm: float | Sequence[float] | Mapping[str, Sequence[float]],
                    lesion_masks: Mapping[str, npt.NDArray] | None = None, threshold: float = 0.5,
                    connectivity: int = 26, min_volume_ml: float = 0.0, channel: int = 1,
                    axis: str = "coronal", init: str | None = None) -> LesionExplorer:
    """Build the interactive lesion explorer for a notebook.

    Parameters
    ----------
    images : mapping scan_id → (X, Y, Z) or (C, X, Y, Z) float array
        Scans (``Case.image``); the projection shows ``channel`` (1 = DWI b1000).
    prob_maps : mapping init → mapping scan_id → (X, Y, Z) float array in [0, 1]
        Predictions per initialisation, as in ``predictions/<init>/<scan_id>_prob.nii.gz``.
    spacing_mm : float, sequence of 3 float, or mapping scan_id → spacing
        Voxel size in mm.
    lesion_masks : mapping scan_id → (X, Y, Z) bool/int array, optional
        Reference lesions: outlined in the overlay; Dice per init shown.
    threshold : float
        Initial slider value.
    connectivity, min_volume_ml
        Passed to :func:`threshold_lesions`.
    channel : int
        Channel of a 4D image used for the projection.
    axis : {"coronal", "axial", "sagittal"}
        Projection direction.
    init : str, optional
        Initialisation selected first; default the first of :data:`sapkit.figures.INIT_ORDER`.

    Returns
    -------
    LesionExplorer
        ``.widget`` is the ipywidgets box; ``.table`` the current lesion table;
        ``.comparison_table`` one row per init (n_lesions, total_volume_ml [, dice]).
    """
    return LesionExplorer(images, prob_maps, spacing_mm=spacing_mm, lesion_masks=lesion_masks, threshold=threshold,
                          connectivity=connectivity, min_volume_ml=min_volume_ml, channel=channel, axis=axis,
                          init=init)

"""Interactive exploration of lesion predictions: case picker, init selector, threshold slider.

The computation is :func:`sapkit.inference.postprocess.lesion_components` (tested for numbers there);
:class:`LesionExplorer` is a thin ipywidgets shell that calls it and redraws a table and a
plotly projection drawn by :func:`sapkit.plotting.slices.slice_traces` (reference lesions in
green, the thresholded prediction in cyan, as everywhere in the kit).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.config import Config
from sapkit.errors import ConfigError
from sapkit.imaging.window import display_window
from sapkit.inference.postprocess import LESION_COLUMNS, lesion_components
from sapkit.io.run_paths import RunDir
from sapkit.jobs.progress import is_headless, progress_bar
from sapkit.validation import check_spacing
from sapkit.metrics import dice
from sapkit.plotting.colors import init_label, sorted_inits
from sapkit.plotting.slices import slice_traces

__all__ = ["LesionExplorer", "lesion_explorer", "case_of_interest", "explorer_from_run"]

_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}


class LesionExplorer:
    """Case picker + init selector + threshold slider over per-init probability maps.

    Build it with :func:`lesion_explorer`; display it by leaving it last in a cell. Every
    control change calls :meth:`update`, which recomputes the lesion table of the chosen case and
    init at the chosen threshold and redraws the overlay: a maximum-intensity projection of the
    scan with the projected prediction outlined in cyan and the projected reference lesions in
    green (figure traces: image, reference, prediction).
    """

    def __init__(self, images: Mapping[str, npt.NDArray], prob_maps: Mapping[str, Mapping[str, npt.NDArray]], *,
                 spacing_mm: float | Sequence[float] | Mapping[str, Sequence[float]],
                 lesion_masks: Mapping[str, npt.NDArray] | None = None, threshold: float = 0.5,
                 connectivity: int = 26, min_volume_ml: float = 0.0, channel: int = 1, axis: str = "coronal",
                 init: str | None = None, max_rows: int = 12):
        import ipywidgets as w
        import plotly.graph_objects as go

        if axis not in _AXES:
            raise ConfigError(f"axis must be one of {tuple(_AXES)}, got {axis!r}.")
        self.inits = sorted_inits(prob_maps)
        cases = [c for c in images if any(c in prob_maps[i] for i in self.inits)]
        if not cases:
            raise ConfigError("no scan has both an image and a probability map; check the scan ids of "
                                   f"images {list(images)[:5]} and prob_maps {[list(v)[:5] for v in prob_maps.values()]}.")
        self._images, self._prob_maps, self._masks = images, prob_maps, lesion_masks or {}
        self._spacing = spacing_mm
        self._options = dict(connectivity=connectivity, min_volume_ml=min_volume_ml)
        self._channel, self._axis, self._max_rows = channel, _AXES[axis], max_rows
        self.table = pd.DataFrame(columns=LESION_COLUMNS)
        self.comparison_table = pd.DataFrame(columns=["init", "n_lesions", "total_volume_ml"])
        self.component_map: np.ndarray | None = None

        self.case_picker = w.Dropdown(options=cases, value=cases[0], description="case")
        if init is not None and init not in self.inits:
            raise ConfigError(f"init {init!r} has no probability maps; choose one of {self.inits}.")
        self.init_picker = w.ToggleButtons(options=self.inits, value=init or self.inits[0], description="init")
        self.threshold_slider = w.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                                              continuous_update=False, readout_format=".2f")
        self.summary = w.HTML()
        self.comparison = w.HTML()
        self.table_html = w.HTML()
        self.table_html.add_class("sapkit-lesion-table")
        self._go = go
        self.figure: go.FigureWidget | None = None
        self._suspended = False
        # The first case is drawn before the figure widget exists, and the widget is created from
        # those traces: its initial state already holds the image. (Creating it empty and filling
        # it by update messages raced the browser's first render: the panel could stay empty.)
        self._on_case(None)
        controls = w.VBox([self.case_picker, self.init_picker, self.threshold_slider, self.summary,
                           self.comparison, self.table_html])
        self.widget = w.HBox([controls, self.figure])
        self.widget.add_class("sapkit-lesion-explorer")
        self.case_picker.observe(self._on_case, names="value")
        self.init_picker.observe(self._on_control, names="value")
        self.threshold_slider.observe(self._on_control, names="value")

    # -- data of the chosen case ------------------------------------------------------------
    def _case_spacing(self, case: str) -> tuple[float, float, float]:
        spacing = self._spacing[case] if isinstance(self._spacing, Mapping) else self._spacing
        return check_spacing(spacing, error=ConfigError)  # type: ignore[return-value]

    def _on_control(self, _change) -> None:
        if not self._suspended:
            self.update()

    def _on_case(self, _change) -> None:
        case = self.case_picker.value
        image = np.asarray(self._images[case], dtype=np.float32)
        image = image[min(self._channel, image.shape[0] - 1)] if image.ndim == 4 else image
        self._mip = image.max(axis=self._axis).T
        self._window = display_window(self._mip)
        reference = self._masks.get(case)
        self._reference = np.zeros(self._mip.shape, bool) if reference is None else \
            (np.asarray(reference) > 0).max(axis=self._axis).T
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
        self.component_map, self.table = lesion_components(self._prob_maps[init][case], threshold=t,
                                                           spacing_mm=spacing, scan_id=case, **self._options)
        reference = self._masks.get(case)
        rows = []
        for other in self.inits:
            if case not in self._prob_maps[other]:
                continue
            if other == init:
                components, table = self.component_map, self.table
            else:
                components, table = lesion_components(self._prob_maps[other][case], threshold=t,
                                                      spacing_mm=spacing, **self._options)
            row = {"init": other, "n_lesions": len(table), "total_volume_ml": table["volume_ml"].sum()}
            if reference is not None:
                row["dice"] = dice(np.asarray(reference), components)
            rows.append(row)
        spacing_uv = tuple(spacing[a] for a in range(3) if a != self._axis)
        traces = slice_traces(self._mip, spacing_mm=spacing_uv, window=self._window, reference=self._reference,
                              prediction=self.component_map.max(axis=self._axis).T > 0, marker_px=2)
        title = f"{case} · {init_label(init)} · t = {t:.2f}"
        if self.figure is None:
            self.figure = self._go.FigureWidget(data=traces, layout=dict(
                title=title, height=420, width=460, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"),
                xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x")))
        else:
            with self.figure.batch_update():
                for shown, new in zip(self.figure.data, traces):
                    shown.update({k: v for k, v in new.to_plotly_json().items() if k != "type"})
                self.figure.layout.title = title
        self.summary.value = (f"<b>{len(self.table)}</b> lesions, <b>{self.table['volume_ml'].sum():.2f}</b> mL "
                              f"at threshold {t:.2f} ({init})")
        self.comparison_table = pd.DataFrame(rows)
        self.comparison.value = self.comparison_table.to_html(index=False, float_format=lambda v: f"{v:.3f}")
        shown = self.table.head(self._max_rows)[["lesion_id", "n_voxels", "volume_ml", "max_prob", "mean_prob"]]
        self.table_html.value = (shown.to_html(index=False, float_format=lambda v: f"{v:.3f}")
                                 + (f"<i>… {len(self.table) - len(shown)} more</i>"
                                    if len(self.table) > len(shown) else ""))

    def static_figure(self):
        """The current view as a plain plotly figure (stored in an executed notebook, no kernel needed)."""
        fig = self._go.Figure(self.figure)
        fig.update_layout(title=f"{self.figure.layout.title.text} · {len(self.table)} lesions, "
                                f"{self.table['volume_ml'].sum():.2f} mL")
        return fig

    def _repr_mimebundle_(self, **kwargs):
        if is_headless():  # papermill: a widget would be stored without its state; show what it would show
            from IPython.display import display

            display(self.static_figure())
            return {"text/html": self.summary.value + self.comparison.value + self.table_html.value,
                    "text/plain": f"LesionExplorer({self.figure.layout.title.text})"}
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
        Reference lesions: outlined in green in the projection; Dice per init shown.
    threshold : float
        Initial slider value.
    connectivity, min_volume_ml
        Passed to :func:`sapkit.inference.postprocess.lesion_components`.
    channel : int
        Channel of a 4D image used for the projection.
    axis : {"coronal", "axial", "sagittal"}
        Projection direction.
    init : str, optional
        Initialisation selected first; default the first of :data:`sapkit.plotting.colors.INIT_ORDER`.

    Returns
    -------
    LesionExplorer
        ``.widget`` is the ipywidgets box; ``.table`` the current lesion table
        (:data:`sapkit.inference.postprocess.LESION_COLUMNS`), ``.component_map`` its lesions;
        ``.comparison_table`` one row per init (n_lesions, total_volume_ml [, dice]).
    """
    return LesionExplorer(images, prob_maps, spacing_mm=spacing_mm, lesion_masks=lesion_masks, threshold=threshold,
                          connectivity=connectivity, min_volume_ml=min_volume_ml, channel=channel, axis=axis,
                          init=init)


def case_of_interest(lesions: pd.DataFrame, init: str) -> tuple[str, tuple[int, int, int] | None, str]:
    """The lesion worth a look for ``init``: its largest missed lesion, else its largest lesion.

    Parameters
    ----------
    lesions : DataFrame
        ``RunEvaluation.lesions`` (one row per reference lesion and init, centroids in voxels).
    init : str

    Returns
    -------
    (scan_id, centroid, why)
        ``centroid`` is the lesion's (X, Y, Z) voxel index; ``why`` says which rule picked it.

    Examples
    --------
    >>> t = pd.DataFrame({"init": ["sap"] * 2, "scan_id": ["a", "b"], "volume_ml": [2.0, 0.5], "detected": [True, False],
    ...                   "centroid_x_vox": [1.0, 4.2], "centroid_y_vox": [2.0, 5.0], "centroid_z_vox": [3.0, 6.9]})
    >>> case_of_interest(t, "sap")
    ('b', (4, 5, 7), 'largest missed lesion (0.50 mL)')
    """
    rows = lesions[lesions["init"].astype(str) == str(init)]
    if rows.empty:
        raise ConfigError(f"init {init!r} has no evaluated lesions; choose one of {sorted(lesions['init'].unique())}.")
    missed = rows[~rows["detected"].astype(bool)]
    pick, why = (missed, "largest missed lesion") if len(missed) else (rows, "largest lesion")
    row = pick.loc[pick["volume_ml"].idxmax()]
    centroid = tuple(int(round(float(row[f"centroid_{a}_vox"]))) for a in "xyz")
    return str(row["scan_id"]), centroid, f"{why} ({row['volume_ml']:.2f} mL)"


def explorer_from_run(run_dir, evaluation, config: Config, *, init: str = "sap", max_cases: int | None = 8,
                      progress: bool = True) -> LesionExplorer:
    """The lesion explorer over a run's test patients, at each init's tuned threshold.

    Parameters
    ----------
    run_dir : path
        Run folder (``data/``, ``predictions/<init>/``).
    evaluation : RunEvaluation
        From :func:`sapkit.evaluation.cohort.evaluate_run`: test scans, thresholds.
    config : Config
        ``preprocess.clip_percentiles`` and ``eval.connectivity`` (26 by default).
    init : str
        Initialisation selected first; the slider starts at its tuned threshold.
    max_cases : int, optional
        Test scans loaded (the ones with the most reference lesions first); None for all.
    progress : bool
        A bar over the scans read (reading takes seconds per scan).
    """
    from sapkit.data.cases import load_cases
    from sapkit.data.manifest import load_manifest
    from sapkit.io.nifti import read_image

    rd = RunDir(run_dir)
    inits = [i for i in sorted_inits(evaluation.thresholds) if rd.predictions(i).is_dir()]
    counts = evaluation.lesions[evaluation.lesions["init"].astype(str) == str(init)]["scan_id"].value_counts()
    scan_ids = sorted(set(evaluation.counts["scan_id"].astype(str)) | set(counts.index.astype(str)),
                      key=lambda s: (-int(counts.get(s, 0)), s))[:max_cases]
    manifest = load_manifest(rd.data)
    images, masks, spacing, probs = {}, {}, {}, {i: {} for i in inits}
    for sid in progress_bar(scan_ids, desc="explorer: reading test scans", unit="scan", disable=not progress):
        case = load_cases(manifest, [sid], percentiles=config.preprocess.clip_percentiles)[0]
        images[sid], masks[sid], spacing[sid] = case.image, case.lesion, case.spacing_mm
        for i in inits:
            if rd.probability_map(i, sid).is_file():
                probs[i][sid] = read_image(rd.probability_map(i, sid), what="probability map")[0]
    first = init if init in inits else inits[0]
    return LesionExplorer(images, probs, spacing_mm=spacing, lesion_masks=masks,
                          threshold=float(evaluation.thresholds[first].threshold),
                          connectivity=config.eval.connectivity, init=first)

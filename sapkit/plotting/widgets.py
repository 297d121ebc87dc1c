"""Interactive exploration of lesion predictions: case picker, init selector, threshold slider, 3D viewer.

The computation is :func:`sapkit.plotting.outcomes.case_outcomes` (the run's lesion-wise evaluation:
each predicted lesion a true or false positive, per-case sensitivity and F2, tested for numbers there)
or, without a reference, :func:`sapkit.inference.postprocess.lesion_components`. :class:`LesionExplorer`
is a thin ipywidgets shell that calls them and redraws a table and a plotly projection drawn by
:func:`sapkit.plotting.slices.slice_traces` (reference lesions green, true positives cyan, false
positives orange, misses magenta: :mod:`sapkit.plotting.colors`); a chosen lesion opens in the 3D
viewer (:func:`sapkit.plotting.viewers.view`). :mod:`sapkit.plotting.run_explorer` builds it over a run.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.config import EvalConfig
from sapkit.errors import ConfigError
from sapkit.imaging.window import display_window
from sapkit.inference.postprocess import LESION_COLUMNS, lesion_components
from sapkit.jobs.progress import is_headless
from sapkit.metrics import CENTROID_COLUMNS, dice
from sapkit.plotting.colors import OUTCOME_COLORS, init_label, sorted_inits
from sapkit.plotting.outcomes import CaseOutcomes, case_outcomes
from sapkit.plotting.slices import slice_traces
from sapkit.plotting.viewers import legend_html, select_backend, view
from sapkit.validation import check_spacing

__all__ = ["LesionExplorer", "lesion_explorer"]

_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
_NO_LESION = ("— choose a lesion: it opens in the 3D viewer —", None)
_TABLE_COLUMNS = ["lesion_id", "outcome", "n_voxels", "volume_ml", "max_prob", "mean_prob"]


class LesionExplorer:
    """Case picker + init selector + threshold slider + lesion picker over per-init probability maps.

    Build it with :func:`lesion_explorer` (or :func:`sapkit.plotting.run_explorer.explorer_from_run`);
    display it by leaving it last in a cell. Every control change calls :meth:`update`, which
    recomputes the lesions of the chosen case and init at the chosen threshold (each marked true or
    false positive when a reference exists, with the case's sensitivity and F2) and redraws a
    maximum-intensity projection (traces: image, reference, true positive, false positive, missed).
    Choosing a lesion in ``lesion_picker`` (or a failure-gallery panel in ``gallery_picker``) opens it
    in the 3D viewer below (:meth:`open_lesion`).
    """

    def __init__(self, images: Mapping[str, npt.NDArray], prob_maps: Mapping[str, Mapping[str, npt.NDArray]], *,
                 spacing_mm: float | Sequence[float] | Mapping[str, Sequence[float]],
                 lesion_masks: Mapping[str, npt.NDArray] | None = None, threshold: float = 0.5,
                 connectivity: int = 26, min_volume_ml: float = 0.0, channel: int = 1, axis: str = "coronal",
                 init: str | None = None, max_rows: int = 12, eval_config: EvalConfig | None = None,
                 case_labels: Mapping[str, str] | None = None, note: str = "",
                 gallery: pd.DataFrame | None = None, thresholds: Mapping[str, float] | None = None,
                 viewer_backend: str = "auto"):
        import ipywidgets as w
        import plotly.graph_objects as go

        if axis not in _AXES:
            raise ConfigError(f"axis must be one of {tuple(_AXES)}, got {axis!r}.")
        self.inits = sorted_inits(prob_maps)
        cases = [c for c in images if any(c in prob_maps[i] for i in self.inits)]
        if not cases:
            raise ConfigError("no scan has both an image and a probability map; check the scan ids of "
                                   f"images {list(images)[:5]} and prob_maps {[list(v)[:5] for v in prob_maps.values()]}.")
        self.cases = cases
        self._images, self._prob_maps, self._masks = images, prob_maps, lesion_masks or {}
        self._spacing = spacing_mm
        self._eval = eval_config or EvalConfig(connectivity=connectivity)
        self._options = dict(connectivity=connectivity, min_volume_ml=min_volume_ml)
        self._channel, self._axis, self._max_rows = channel, _AXES[axis], max_rows
        # chosen now, in the cell that builds the explorer: a widget callback later runs outside any cell,
        # where "auto" would take the kernel for headless
        self._thresholds, self._backend = dict(thresholds or {}), select_backend(viewer_backend)
        self.table = pd.DataFrame(columns=LESION_COLUMNS)
        self.comparison_table = pd.DataFrame(columns=["init", "n_lesions", "total_volume_ml"])
        self.component_map: np.ndarray | None = None
        self.outcomes: CaseOutcomes | None = None
        self.viewer: Any = None

        labels = case_labels or {}
        self.case_picker = w.Dropdown(options=[(labels.get(c, c), c) for c in cases], value=cases[0],
                                      description="case", layout=w.Layout(width="320px"))
        self.case_picker.add_class("sapkit-case-picker")
        if init is not None and init not in self.inits:
            raise ConfigError(f"init {init!r} has no probability maps; choose one of {self.inits}.")
        self.init_picker = w.ToggleButtons(options=self.inits, value=init or self.inits[0], description="init")
        self.threshold_slider = w.FloatSlider(value=threshold, min=0.05, max=0.95, step=0.05, description="threshold",
                                              continuous_update=False, readout_format=".2f")
        self.cases_note = w.HTML(note or f"{len(cases)} scans")
        self.summary = w.HTML()
        self.comparison = w.HTML()
        self.table_html = w.HTML()
        self.table_html.add_class("sapkit-lesion-table")
        self.lesion_picker = w.Dropdown(options=[_NO_LESION], value=None, description="lesion",
                                        layout=w.Layout(width="420px"))
        self.lesion_picker.add_class("sapkit-lesion-picker")
        self._gallery = gallery.reset_index(drop=True) if gallery is not None and len(gallery) else None
        gallery_options = [("— or a failure-gallery panel —", None)] + (
            [(str(r.label), i) for i, r in enumerate(self._gallery.itertuples())] if self._gallery is not None else [])
        self.gallery_picker = w.Dropdown(options=gallery_options, value=None, description="gallery",
                                         layout=w.Layout(width="420px"))
        self.gallery_picker.add_class("sapkit-gallery-picker")
        self.viewer_out = w.Output()
        self.viewer_out.add_class("sapkit-explorer-viewer")
        self.viewer_note = w.HTML()
        self._go = go
        self.figure: go.FigureWidget | None = None
        self._suspended = False
        self._pending_focus: tuple[str, tuple[float, ...]] | None = None
        # The first case is drawn before the figure widget exists, and the widget is created from
        # those traces: its initial state already holds the image. (Creating it empty and filling
        # it by update messages raced the browser's first render: the panel could stay empty.)
        self._on_case(None)
        controls = w.VBox([self.cases_note, self.case_picker, self.init_picker, self.threshold_slider, self.summary,
                           self.comparison, self.table_html])
        pickers = w.VBox([self.lesion_picker, self.gallery_picker, self.viewer_note, self.viewer_out])
        self.widget = w.VBox([w.HBox([controls, self.figure]), pickers])
        self.widget.add_class("sapkit-lesion-explorer")
        self.case_picker.observe(self._on_case, names="value")
        self.init_picker.observe(self._on_control, names="value")
        self.threshold_slider.observe(self._on_control, names="value")
        self.lesion_picker.observe(self._on_lesion, names="value")
        self.gallery_picker.observe(self._on_gallery, names="value")

    # -- data of the chosen case ------------------------------------------------------------
    def _case_spacing(self, case: str) -> tuple[float, float, float]:
        spacing = self._spacing[case] if isinstance(self._spacing, Mapping) else self._spacing
        return check_spacing(spacing, error=ConfigError)  # type: ignore[return-value]

    def _on_control(self, _change) -> None:
        if not self._suspended:
            self.update()

    def _on_case(self, _change) -> None:
        if self._suspended and _change is not None:  # show() switches several controls, then redraws once
            return
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
    def _lesions_of(self, init: str, case: str, t: float, spacing) -> tuple[np.ndarray, pd.DataFrame, Any]:
        reference = self._masks.get(case)
        if reference is None:
            components, table = lesion_components(self._prob_maps[init][case], threshold=t, spacing_mm=spacing,
                                                  scan_id=case, **self._options)
            return components, table, None
        o = case_outcomes(reference, self._prob_maps[init][case], threshold=t, spacing_mm=spacing,
                          eval_config=self._eval, scan_id=case)
        return o.component_map, o.predictions, o

    def update(self) -> None:
        """Recompute the lesions, outcomes, table and overlay for the current case, init and threshold."""
        case, init, t = self.case_picker.value, self.init_picker.value, self.threshold_slider.value
        spacing = self._case_spacing(case)
        self.component_map, self.table, self.outcomes = self._lesions_of(init, case, t, spacing)
        reference = self._masks.get(case)
        rows = []
        for other in self.inits:
            if case not in self._prob_maps[other]:
                continue
            components, table, o = (self.component_map, self.table, self.outcomes) if other == init else \
                self._lesions_of(other, case, t, spacing)
            row = {"init": other, "n_lesions": len(table), "total_volume_ml": table["volume_ml"].sum()}
            if o is not None:
                row.update(sensitivity=o.sensitivity, f2=o.f2, false_positives=int(o.report.patient.fp),
                           dice=dice(np.asarray(reference), components))
            rows.append(row)
        self._draw(case, init, t, spacing)
        self.comparison_table = pd.DataFrame(rows)
        self.comparison.value = self.comparison_table.to_html(index=False, float_format=lambda v: f"{v:.3f}")
        shown = self.table.head(self._max_rows)[[c for c in _TABLE_COLUMNS if c in self.table.columns]]
        self.table_html.value = (shown.to_html(index=False, float_format=lambda v: f"{v:.3f}")
                                 + (f"<i>… {len(self.table) - len(shown)} more</i>"
                                    if len(self.table) > len(shown) else ""))
        self._fill_lesion_picker()

    def _draw(self, case: str, init: str, t: float, spacing) -> None:
        o = self.outcomes
        fp = np.zeros_like(self.component_map, dtype=bool) if o is None else \
            np.isin(self.component_map, o.predictions.loc[o.predictions["false_positive"], "lesion_id"].to_numpy())
        tp = (self.component_map > 0) & ~fp
        project = lambda m: m.max(axis=self._axis).T  # noqa: E731
        spacing_uv = tuple(spacing[a] for a in range(3) if a != self._axis)
        traces = slice_traces(self._mip, spacing_mm=spacing_uv, window=self._window, reference=self._reference,
                              prediction=project(tp), marker_px=2)
        traces[2].name = "prediction" if o is None else "true positive"
        for mask, name in ((fp, "false_positive"), (np.zeros_like(fp) if o is None else o.missed_map, "missed")):
            extra = slice_traces(self._mip, spacing_mm=spacing_uv, window=self._window, prediction=project(mask),
                                 marker_px=2)[1]
            extra.update(name=name.replace("_", " ") + ("" if name != "missed" else " lesion"), legendgroup=name,
                         marker=dict(color=OUTCOME_COLORS[name], size=2, symbol="square"))
            traces.append(extra)
        title = f"{case} · {init_label(init)} · t = {t:.2f}"
        if self.figure is None:
            self.figure = self._go.FigureWidget(data=traces, layout=dict(
                title=dict(text=title, x=0.02, xanchor="left"), height=460, width=480,
                margin=dict(l=10, r=45, t=40, b=10), modebar=dict(orientation="v"),  # toolbar beside, not over the title
                legend=dict(orientation="h", itemsizing="constant", font=dict(size=12)),
                xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x")))
        else:
            with self.figure.batch_update():
                for shown, new in zip(self.figure.data, traces):
                    shown.update({k: v for k, v in new.to_plotly_json().items() if k != "type"})
                self.figure.layout.title.text = title
        text = (f"<b>{len(self.table)}</b> lesions, <b>{self.table['volume_ml'].sum():.2f}</b> mL "
                f"at threshold {t:.2f} ({init})")
        if o is not None:
            p = o.report.patient
            text += (f"<br><b>{p.tp}</b> of {p.n_lesions} reference lesions found (sensitivity "
                     f"<b>{p.sensitivity:.3f}</b>), <b>{p.fp}</b> false positive{'s' if p.fp != 1 else ''}, "
                     f"F2 <b>{p.f2:.3f}</b> (as in eval/patients.csv at this threshold)")
        self.summary.value = text

    # -- lesion → 3D viewer -----------------------------------------------------------------
    def _fill_lesion_picker(self) -> None:
        options: list[tuple[str, Any]] = [_NO_LESION]
        for r in self.table.itertuples():
            outcome = getattr(r, "outcome", "predicted")
            options.append((f"lesion {r.lesion_id} · {outcome} · {r.volume_ml:.2f} mL · max p {r.max_prob:.2f}",
                            ("predicted", int(r.lesion_id))))
        if self.outcomes is not None:
            for r in self.outcomes.missed.itertuples():
                options.append((f"reference lesion {r.lesion_id} · missed · {r.volume_ml:.2f} mL",
                                ("missed", int(r.lesion_id))))
        self._suspended = True
        try:
            self.lesion_picker.options = options
            self.lesion_picker.value = None
        finally:
            self._suspended = False
        if self._pending_focus is not None:
            kind, centroid = self._pending_focus
            self._pending_focus = None
            self._select_nearest(kind, centroid)

    def _select_nearest(self, kind: str, centroid: Sequence[float]) -> None:
        """Choose the lesion of ``kind`` nearest ``centroid`` (voxels): a gallery panel's lesion."""
        table = self.table if kind == "predicted" else (self.outcomes.missed if self.outcomes is not None else None)
        if table is None or not len(table):
            return
        d = ((table[list(CENTROID_COLUMNS)].to_numpy(float) - np.asarray(centroid, float)) ** 2).sum(axis=1)
        self.lesion_picker.value = (kind, int(table.iloc[int(np.argmin(d))]["lesion_id"]))

    def _on_lesion(self, change) -> None:
        if not self._suspended and change["new"] is not None:
            self.open_lesion(*change["new"])

    def _on_gallery(self, change) -> None:
        if change["new"] is None or self._gallery is None:
            return
        row = self._gallery.iloc[int(change["new"])]
        self.show(str(row["scan_id"]), init=str(row["init"]),
                  focus=("missed" if row["kind"] == "missed" else "predicted",
                         tuple(float(row[c]) for c in CENTROID_COLUMNS)))

    def show(self, case: str, *, init: str | None = None, threshold: float | None = None,
             focus: tuple[str, Sequence[float]] | None = None) -> None:
        """Switch to ``case`` (and ``init``, at ``threshold`` or its tuned one), then open the lesion of
        kind ``"predicted"``/``"missed"`` nearest the voxel centroid ``focus[1]`` in the 3D viewer."""
        if case not in self.cases:
            raise ConfigError(f"scan {case!r} is not in the explorer; choose one of {self.cases[:5]} …")
        self._suspended = True
        try:
            self.case_picker.value = case
            if init is not None:
                self.init_picker.value = init
            t = threshold if threshold is not None else self._thresholds.get(self.init_picker.value)
            if t is not None:
                self.threshold_slider.value = round(float(t), 2)
        finally:
            self._suspended = False
        self._pending_focus = focus
        self._on_case(None)

    def open_lesion(self, kind: str, lesion_id: int) -> None:
        """Open lesion ``lesion_id`` (``kind`` ``"predicted"``: the table's ``lesion_id``; ``"missed"``: the
        reference lesion's) in the 3D viewer, true positives, false positives and misses in their colours."""
        case, init, t = self.case_picker.value, self.init_picker.value, self.threshold_slider.value
        table = self.table if kind == "predicted" else self.outcomes.missed  # type: ignore[union-attr]
        row = table[table["lesion_id"] == lesion_id].iloc[0]
        focus = tuple(float(row[c]) for c in CENTROID_COLUMNS)
        what = row.get("outcome", "predicted lesion") if kind == "predicted" else "missed lesion"
        outcomes = self.outcomes.label_map() if self.outcomes is not None else (self.component_map > 0).astype(np.uint8)
        backend = self._backend
        self.viewer = view(self._images[case], outcomes=outcomes, reference=self._masks.get(case),
                           spacing_mm=self._case_spacing(case), channel=self._channel, backend=backend,
                           focus_vox=focus, title=f"{case} · {init_label(init)} · {what} {lesion_id}")
        self.viewer_note.value = (f"3D viewer ({backend}): <b>{case}</b>, {init_label(init)} at t = {t:.2f}, "
                                  f"{what} {lesion_id} ({row['volume_ml']:.2f} mL) at voxel "
                                  f"{tuple(int(round(v)) for v in focus)}")
        from IPython.display import display

        self.viewer_out.clear_output(wait=True)
        with self.viewer_out:
            display(self.viewer)

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
            return {"text/html": self.cases_note.value + "<br>" + self.summary.value + self.comparison.value
                    + self.table_html.value,
                    "text/plain": f"LesionExplorer({self.figure.layout.title.text})"}
        return self.widget._repr_mimebundle_(**kwargs)


def lesion_explorer(images: Mapping[str, npt.NDArray], prob_maps: Mapping[str, Mapping[str, npt.NDArray]], *,
                    spacing_mm: float | Sequence[float] | Mapping[str, Sequence[float]],
                    lesion_masks: Mapping[str, npt.NDArray] | None = None, threshold: float = 0.5,
                    connectivity: int = 26, min_volume_ml: float = 0.0, channel: int = 1,
                    axis: str = "coronal", init: str | None = None, **options: Any) -> LesionExplorer:
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
        Reference lesions: outlined in green in the projection; each predicted lesion is then a true or
        false positive (:func:`sapkit.plotting.outcomes.case_outcomes`), misses are drawn in magenta,
        and the comparison gives per init the case's sensitivity, F2, false positives and Dice.
    threshold : float
        Initial slider value.
    connectivity, min_volume_ml
        Passed to :func:`sapkit.inference.postprocess.lesion_components` for cases without a
        reference; with one, lesions follow the evaluation (``eval_config``, no minimum volume).
    channel : int
        Channel of a 4D image used for the projection.
    axis : {"coronal", "axial", "sagittal"}
        Projection direction.
    init : str, optional
        Initialisation selected first; default the first of :data:`sapkit.plotting.colors.INIT_ORDER`.
    **options
        ``eval_config`` (the run's ``config.eval``; default ``EvalConfig(connectivity=connectivity)``),
        ``case_labels`` (scan_id → picker text), ``note`` (HTML above the picker), ``gallery`` (rows
        ``label, scan_id, init, kind, centroid_[xyz]_vox`` of the gallery picker), ``thresholds``
        (init → tuned threshold, used when a gallery panel is opened), ``viewer_backend``, ``max_rows``.

    Returns
    -------
    LesionExplorer
        ``.widget`` is the ipywidgets box; ``.table`` the current lesion table
        (:data:`sapkit.inference.postprocess.LESION_COLUMNS`, with a reference also ``pred_id``,
        ``false_positive``, ``outcome``), ``.component_map`` its lesions, ``.outcomes`` the
        :class:`~sapkit.plotting.outcomes.CaseOutcomes`; ``.comparison_table`` one row per init
        (n_lesions, total_volume_ml [, sensitivity, f2, false_positives, dice]).
    """
    return LesionExplorer(images, prob_maps, spacing_mm=spacing_mm, lesion_masks=lesion_masks, threshold=threshold,
                          connectivity=connectivity, min_volume_ml=min_volume_ml, channel=channel, axis=axis,
                          init=init, **options)

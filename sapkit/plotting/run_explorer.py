"""The lesion explorer over a finished run: every test scan listed, each read when it is chosen.

:func:`explorer_from_run` lists all scans of the evaluated test folds in the explorer's case picker
(with their reference-lesion counts and, at the tuned threshold, the chosen init's sensitivity and F2
from ``eval/patients.csv``), reads a scan's image, reference and probability maps only when it is
chosen (the last few are kept), and offers the failure galleries' panels
(:func:`sapkit.plotting.gallery.failure_items`) in its gallery picker, so any of them opens in the 3D
viewer without editing code. :func:`case_of_interest` names the lesion a notebook opens first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from sapkit.config import Config
from sapkit.errors import ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.metrics import CENTROID_COLUMNS
from sapkit.plotting.colors import init_label, sorted_inits
from sapkit.plotting.gallery import GALLERY_KINDS, failure_items
from sapkit.plotting.widgets import LesionExplorer

__all__ = ["explorer_from_run", "case_of_interest", "gallery_choices", "case_labels"]

_KEEP = 3  # scans kept in memory (image, reference, every init's map)


class _Scans:
    """Reads one scan's image, reference, spacing and probability maps on first use; keeps the last few."""

    def __init__(self, scan_ids: list[str], read: Callable[[str], dict[str, Any]]):
        self.scan_ids, self._read, self._cache = scan_ids, read, OrderedDict()

    def get(self, sid: str) -> dict[str, Any]:
        if sid not in self._cache:
            self._cache[sid] = self._read(sid)
            while len(self._cache) > _KEEP:
                self._cache.popitem(last=False)
        self._cache.move_to_end(sid)
        return self._cache[sid]


class _Field(Mapping):
    """scan_id → one field of a scan (``image``, ``lesion``, ``spacing`` or an init's map), read lazily."""

    def __init__(self, scans: _Scans, field: str, ids: list[str]):
        self._scans, self._field, self._ids = scans, field, ids

    def __getitem__(self, sid: str) -> Any:
        if sid not in self._ids:
            raise KeyError(sid)
        return self._scans.get(sid)[self._field]

    def __contains__(self, sid: object) -> bool:  # without reading the scan
        return sid in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def case_labels(patients: pd.DataFrame, init: str) -> dict[str, str]:
    """Picker text per scan: ``"p003_s0 · 3 lesions · SAP sens 0.67, F2 0.71"`` (``eval/patients.csv`` values).

    Examples
    --------
    >>> t = pd.DataFrame({"init": ["sap"], "scan_id": ["a"], "n_lesions": [3], "sensitivity": [2 / 3], "f2": [0.5]})
    >>> case_labels(t, "sap")
    {'a': 'a · 3 lesions · SAP sens 0.67, F2 0.50'}
    """
    rows = patients[patients["init"].astype(str) == str(init)]
    return {str(r.scan_id): f"{r.scan_id} · {int(r.n_lesions)} lesion{'s' if int(r.n_lesions) != 1 else ''} · "
                            f"{init_label(init)} sens {r.sensitivity:.2f}, F2 {r.f2:.2f}" for r in rows.itertuples()}


def gallery_choices(evaluation: Any, init: str, *, max_items: int = 6) -> pd.DataFrame:
    """The failure-gallery panels of ``init`` as gallery-picker rows, in the galleries' numbering.

    Returns
    -------
    DataFrame
        Columns ``label`` ("missed 1 · p003_s0 · 0.52 mL", the panel number as in
        :func:`sapkit.plotting.gallery.failure_gallery_figure`), ``scan_id, init, kind`` and the centroid
        columns (voxels).
    """
    frames = []
    for kind in GALLERY_KINDS:
        items, _ = failure_items(evaluation, init=init, kind=kind)
        items = items.head(max_items)
        name = "missed" if kind == "missed" else "false positive"
        frames.append(pd.DataFrame({
            "label": [f"{name} {k} · {r.scan_id} · {r.volume_ml:.2f} mL" for k, r in enumerate(items.itertuples(), 1)],
            "scan_id": items["scan_id"].astype(str).to_numpy(), "init": init, "kind": kind,
            **{c: items[c].to_numpy(float) for c in CENTROID_COLUMNS}}))
    return pd.concat(frames, ignore_index=True)


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


def explorer_from_run(run_dir: str | Path, evaluation: Any, config: Config, *, init: str = "sap",
                      gallery_size: int = 6, viewer_backend: str = "auto") -> LesionExplorer:
    """The lesion explorer over every test scan of a run, at the chosen init's tuned threshold.

    Parameters
    ----------
    run_dir : path
        Run folder (``data/``, ``predictions/<init>/``).
    evaluation : RunEvaluation
        From :func:`sapkit.evaluation.cohort.evaluate_run`: test scans, thresholds, tables.
    config : Config
        ``preprocess.clip_percentiles`` and ``eval`` (the matching rules of the outcomes).
    init : str
        Initialisation selected first; the slider starts at its tuned threshold.
    gallery_size : int
        Panels per failure gallery offered in the gallery picker (as the notebook's galleries).
    viewer_backend : str
        Backend of the 3D viewer a chosen lesion opens in (:func:`sapkit.plotting.viewers.select_backend`).

    Returns
    -------
    LesionExplorer
        Its case picker lists every test scan (``.cases``), the scans with most reference lesions first;
        a scan is read when chosen.
    """
    from sapkit.data.cases import load_cases
    from sapkit.data.manifest import load_manifest
    from sapkit.io.nifti import read_image

    rd = RunDir(run_dir)
    inits = [i for i in sorted_inits(evaluation.thresholds) if rd.predictions(i).is_dir()]
    if not inits:
        raise ConfigError(f"no predictions/<init>/ folder in {run_dir} for the evaluated inits "
                          f"{list(evaluation.thresholds)}; run notebook 04 first.")
    first = init if init in inits else inits[0]
    patients = evaluation.patients
    n_lesions = patients.drop_duplicates("scan_id").set_index("scan_id")["n_lesions"]
    scan_ids = sorted(set(patients["scan_id"].astype(str)) | set(evaluation.counts["scan_id"].astype(str)),
                      key=lambda s: (-int(n_lesions.get(s, 0)), s))
    manifest = load_manifest(rd.data)

    def _read(sid: str) -> dict[str, Any]:
        case = load_cases(manifest, [sid], percentiles=config.preprocess.clip_percentiles)[0]
        out = {"image": case.image, "lesion": case.lesion, "spacing": case.spacing_mm}
        for i in inits:
            if rd.probability_map(i, sid).is_file():
                out[f"prob:{i}"] = read_image(rd.probability_map(i, sid), what="probability map")[0]
        return out

    scans = _Scans(scan_ids, _read)
    probs = {i: _Field(scans, f"prob:{i}", [s for s in scan_ids if rd.probability_map(i, s).is_file()]) for i in inits}
    note = (f"<b>{len(scan_ids)}</b> test scans: every scan of the test folds, most reference lesions first; "
            "each is read when chosen")
    return LesionExplorer(_Field(scans, "image", scan_ids), probs, spacing_mm=_Field(scans, "spacing", scan_ids),
                          lesion_masks=_Field(scans, "lesion", scan_ids),
                          threshold=float(evaluation.thresholds[first].threshold),
                          connectivity=config.eval.connectivity, init=first, eval_config=config.eval,
                          case_labels=case_labels(patients, first), note=note,
                          gallery=gallery_choices(evaluation, first, max_items=gallery_size),
                          thresholds={i: float(c.threshold) for i, c in evaluation.thresholds.items()},
                          viewer_backend=viewer_backend)

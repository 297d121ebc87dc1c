"""Threshold-slider update time at demo size (64 × 48 × 200 voxels, 3 mm), against the 1 s budget.

Times, median of repeated runs over thresholds 0.05…0.95:
  * ``sapkit.inference.postprocess.lesion_components`` (cc3d, 26-connectivity) and a scipy.ndimage.label peer;
  * one full ``LesionExplorer.update()`` (table for the chosen init, comparison over three inits,
    overlay projection pushed into the plotly FigureWidget) — the Python side of one slider move.
Run: ``python benchmarks/bench_threshold_slider.py``. Prints ratios; asserts nothing.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from scipy import ndimage

from sapkit.inference.postprocess import lesion_components
from sapkit.plotting.widgets import lesion_explorer

SHAPE = (64, 48, 200)
SPACING_MM = (3.0, 3.0, 3.0)
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def _prob_map(rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 2.0)
    return (1.0 / (1.0 + np.exp(-field / field.std() * 2.0 + 3.0))).astype(np.float32)


def _scipy_table(prob: np.ndarray, threshold: float) -> int:
    labels, n = ndimage.label(prob >= threshold, structure=np.ones((3, 3, 3)))
    if n:
        ndimage.sum_labels(np.ones_like(prob), labels, np.arange(1, n + 1))
        ndimage.maximum(prob, labels, np.arange(1, n + 1))
    return n


def _median_s(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        for t in THRESHOLDS:
            start = time.perf_counter()
            fn(float(t))
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import importlib.metadata
    import os
    import platform

    import scipy

    print(f"python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · numpy {np.__version__} "
          f"· scipy {scipy.__version__} · cc3d {importlib.metadata.version('connected-components-3d')} · {platform.platform()}")
    rng = np.random.default_rng(0)
    probs = {init: {"case": _prob_map(rng)} for init in ("scratch", "ssl", "sap")}
    image = rng.random((2, *SHAPE), dtype=np.float32)
    prob = probs["sap"]["case"]
    n_lesions = len(lesion_components(prob, threshold=0.5, spacing_mm=SPACING_MM)[1])
    table_s = _median_s(lambda t: lesion_components(prob, threshold=t, spacing_mm=SPACING_MM))
    scipy_s = _median_s(lambda t: _scipy_table(prob, t))
    explorer = lesion_explorer({"case": image}, probs, spacing_mm=SPACING_MM,
                               lesion_masks={"case": prob >= 0.6}, init="sap")
    update_s = _median_s(lambda t: setattr(explorer.threshold_slider, "value", t))
    print(f"demo-size case {SHAPE} voxels, {n_lesions} lesions at t = 0.5")
    print(f"lesion_components (cc3d):          {table_s * 1e3:7.1f} ms")
    print(f"scipy.ndimage.label peer:          {scipy_s * 1e3:7.1f} ms   (cc3d/scipy = {table_s / scipy_s:.2f})")
    print(f"LesionExplorer slider update:      {update_s * 1e3:7.1f} ms   (update / 1 s budget = {update_s:.3f})")


if __name__ == "__main__":
    main()

"""Probability threshold tuning: maximise the median (or mean) patient-level F2 (docs/metrics.md §11).

The threshold is chosen on the tuning fold only and then applied unchanged to the test folds.
Patients whose F2 is undefined (no lesion, no prediction) are left out of the statistic; ties go
to the lowest threshold.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sapkit.errors import MetricInputError, ThresholdGridWarning

if TYPE_CHECKING:  # pandas is imported where a table is built, not with the package
    import pandas as pd

__all__ = ["ThresholdChoice", "tune_threshold", "grid_edge", "extended_grid"]

_STATISTICS = ("median", "mean")


@dataclass(frozen=True)
class ThresholdChoice:
    """The tuned threshold and the curve it was read from.

    Attributes
    ----------
    threshold : float
        Chosen probability threshold.
    value : float
        The statistic (median or mean patient F2) at that threshold.
    statistic : str
        ``"median"`` or ``"mean"``.
    curve : DataFrame
        ``threshold, f2, n_scans`` for every threshold of the grid (``n_scans``: scans with a
        defined F2).
    """

    threshold: float
    value: float
    statistic: str
    curve: pd.DataFrame

    def to_dict(self) -> dict:
        """JSON-ready dict (``eval/threshold.json``)."""
        return {"threshold": self.threshold, "value": self.value, "statistic": self.statistic, "metric": "f2",
                "grid_edge": grid_edge(self) or None,
                "curve": {"threshold": self.curve["threshold"].tolist(), "f2": self.curve["f2"].tolist()}}


def tune_threshold(counts: pd.DataFrame, *, statistic: str = "median", what: str = "") -> ThresholdChoice:
    """Threshold maximising the median (or mean) of the per-patient F2.

    Parameters
    ----------
    counts : DataFrame
        Per scan and threshold, with columns ``scan_id, threshold, f2`` (from
        :func:`~sapkit.metrics.lesion_counts_by_threshold`), for the tuning fold only.
    statistic : {"median", "mean"}
    what : str
        Named in the warning (e.g. ``"init sap"``).

    Returns
    -------
    ThresholdChoice

    Raises
    ------
    MetricInputError
        Unknown statistic, missing columns, or F2 undefined at every threshold.

    Warns
    -----
    ThresholdGridWarning
        The chosen threshold is the first or last of the grid (:func:`grid_edge`): the warning
        gives the extended grid of the refinement rule (:func:`extended_grid`).

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"scan_id": ["a", "a", "b", "b"], "threshold": [0.3, 0.5, 0.3, 0.5],
    ...                   "f2": [0.5, 0.5, 0.2, 0.2]})
    >>> tune_threshold(c).threshold  # tie -> lowest
    0.3
    """
    scan_note = f" for {what}" if what else ""
    if statistic not in _STATISTICS:
        raise MetricInputError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")
    missing = [c for c in ("scan_id", "threshold", "f2") if c not in counts.columns]
    if missing:
        raise MetricInputError(f"counts table lacks column(s) {missing}; build it with lesion_counts_by_threshold")
    import pandas as pd

    grouped = counts.dropna(subset=["f2"]).groupby("threshold")["f2"]
    curve = pd.DataFrame({"f2": grouped.median() if statistic == "median" else grouped.mean(),
                          "n_scans": grouped.size()})
    curve = curve.reindex(sorted(counts["threshold"].unique())).rename_axis("threshold").reset_index()
    values = curve["f2"].to_numpy(np.float64)
    if not np.isfinite(values).any():
        raise MetricInputError("patient F2 is undefined at every threshold (no lesions and no predictions); "
                               "tune on patients with lesions")
    best = float(np.nanmax(values))
    idx = int(np.flatnonzero(values == best)[0])
    choice = ThresholdChoice(float(curve["threshold"].iloc[idx]), best, statistic, curve)
    edge = grid_edge(choice)
    if edge:
        grid = curve["threshold"].to_numpy(np.float64)
        warnings.warn(
            f"tuned threshold {choice.threshold:g} is the {edge} end of the grid {grid.min():g}–{grid.max():g}"
            f"{scan_note}: its F2 may rise further beyond it. Extend the grid past that end and tune again "
            f"(docs/metrics.md §11.1), e.g. -p eval.thresholds={extended_grid(grid, edge)}",
            ThresholdGridWarning, stacklevel=2)
    return choice


def grid_edge(choice: ThresholdChoice) -> str:
    """``"upper"`` / ``"lower"`` when the chosen threshold is the grid's largest / smallest value
    and the curve is not flat there (a plateau reaching the edge is not an edge), else ``""``."""
    grid = choice.curve["threshold"].to_numpy(np.float64)
    f2 = choice.curve["f2"].to_numpy(np.float64)
    if grid.size < 2:
        return ""
    if choice.threshold == grid.max():
        return "upper"
    if choice.threshold == grid.min() and not (np.isfinite(f2[1]) and f2[1] == f2[0]):
        return "lower"
    return ""


def extended_grid(grid: np.ndarray, edge: str) -> list[float]:
    """The grid extended past ``edge`` in steps of a fifth of its last step, staying inside (0, 1)
    (the documented refinement rule, docs/metrics.md §11.1).

    >>> extended_grid(np.array([0.85, 0.9, 0.95]), "upper")[-4:]
    [0.96, 0.97, 0.98, 0.99]
    """
    grid = np.sort(np.asarray(grid, np.float64))
    if edge == "upper":
        step = (grid[-1] - grid[-2]) / 5
        extra = np.arange(1, 5) * step + grid[-1]
        extra = extra[extra < 1.0]
    else:
        step = (grid[1] - grid[0]) / 5
        extra = grid[0] - np.arange(4, 0, -1) * step
        extra = extra[extra > 0.0]
    return sorted(round(float(t), 6) for t in np.concatenate([grid, extra]))

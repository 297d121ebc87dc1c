"""Probability threshold tuning: maximise the median (or mean) patient-level F2 (docs/metrics.md §11).

The threshold is chosen on the tuning fold only and then applied unchanged to the test folds.
Patients whose F2 is undefined (no lesion, no prediction) are left out of the statistic; ties go
to the lowest threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sapkit.errors import MetricInputError

if TYPE_CHECKING:  # pandas is imported where a table is built, not with the package
    import pandas as pd

__all__ = ["ThresholdChoice", "tune_threshold"]

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
                "curve": {"threshold": self.curve["threshold"].tolist(), "f2": self.curve["f2"].tolist()}}


def tune_threshold(counts: pd.DataFrame, *, statistic: str = "median") -> ThresholdChoice:
    """Threshold maximising the median (or mean) of the per-patient F2.

    Parameters
    ----------
    counts : DataFrame
        Per scan and threshold, with columns ``scan_id, threshold, f2`` (from
        :func:`~sapkit.metrics.lesion_counts_by_threshold`), for the tuning fold only.
    statistic : {"median", "mean"}

    Returns
    -------
    ThresholdChoice

    Raises
    ------
    MetricInputError
        Unknown statistic, missing columns, or F2 undefined at every threshold.

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"scan_id": ["a", "a", "b", "b"], "threshold": [0.3, 0.5, 0.3, 0.5],
    ...                   "f2": [0.5, 0.5, 0.2, 0.2]})
    >>> tune_threshold(c).threshold  # tie -> lowest
    0.3
    """
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
    return ThresholdChoice(float(curve["threshold"].iloc[idx]), best, statistic, curve)

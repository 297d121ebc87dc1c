"""sapkit.metrics._threshold: threshold maximising the median (or mean) patient F2 (docs/metrics.md §11)."""

from __future__ import annotations

import pandas as pd
import pytest

from sapkit.errors import MetricInputError
from sapkit.metrics import tune_threshold


def _counts():
    """Two scans, three thresholds, 2 lesions each: (threshold, TP, FP) per scan."""
    rows = []
    per_scan = {"a": [(0.3, 2, 3), (0.5, 1, 1), (0.7, 0, 0)], "b": [(0.3, 2, 1), (0.5, 2, 0), (0.7, 1, 0)]}
    for scan_id, data in per_scan.items():
        for t, tp, fp in data:
            rows.append({"scan_id": scan_id, "threshold": t, "f2": 5 * tp / (5 * tp + 4 * (2 - tp) + fp)})
    return pd.DataFrame(rows)


def test_tune_threshold_median_mean_and_ties():
    choice = tune_threshold(_counts())
    # F2 per scan: a: [5*2/(10+3)=.769, 5/(5+4+1)=.5, 0], b: [10/11=.909, 1, 5/9=.556]
    assert choice.curve["f2"].tolist() == pytest.approx([(10 / 13 + 10 / 11) / 2, 0.75, 5 / 18])
    assert choice.curve["n_scans"].tolist() == [2, 2, 2]
    assert choice.threshold == 0.3 and choice.statistic == "median"
    assert choice.to_dict()["curve"]["threshold"] == [0.3, 0.5, 0.7]
    tie = pd.DataFrame({"scan_id": ["a", "a", "a"], "threshold": [0.2, 0.4, 0.6], "f2": [0.5, 0.9, 0.9]})
    assert tune_threshold(tie).threshold == 0.4  # tie -> lowest threshold
    skew = pd.DataFrame({"scan_id": list("abcabc"), "threshold": [0.3] * 3 + [0.6] * 3,
                         "f2": [0.5, 0.5, 0.0, 0.45, 0.45, 0.45]})
    assert tune_threshold(skew, statistic="median").threshold == 0.3
    assert tune_threshold(skew, statistic="mean").threshold == 0.6


def test_undefined_f2_is_left_out_and_bad_input_raises():
    c = _counts()
    c.loc[(c.scan_id == "b") & (c.threshold == 0.3), "f2"] = float("nan")  # no lesion, no prediction
    choice = tune_threshold(c)
    assert choice.curve["n_scans"].tolist() == [1, 2, 2]
    assert choice.curve["f2"].iloc[0] == pytest.approx(10 / 13)
    with pytest.raises(MetricInputError, match="statistic"):
        tune_threshold(c, statistic="max")
    with pytest.raises(MetricInputError, match=r"lacks column\(s\) \['scan_id'\]"):
        tune_threshold(c.drop(columns="scan_id"))
    with pytest.raises(MetricInputError, match="undefined at every threshold"):
        tune_threshold(c.assign(f2=float("nan")))

"""sapkit.plotting.paired_figures: the slopegraph draws exactly the pairs of the paired table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.errors import ConfigError
from sapkit.evaluation.story import paired_differences
from sapkit.plotting.colors import INIT_COLORS
from sapkit.plotting.paired_figures import paired_values, slopegraph_figure


@pytest.fixture
def patients():
    rng = np.random.default_rng(3)
    rows = []
    for k in range(7):
        for init, shift in (("scratch", -0.2), ("ssl", -0.05), ("sap", 0.0)):
            rows.append({"init": init, "scan_id": f"p{k:02d}", "f2": float(np.clip(0.6 + shift + rng.normal(0, 0.1), 0, 1))})
    rows.append({"init": "ssl", "scan_id": "p99", "f2": 0.5})   # scored under SSL only: never paired
    table = pd.DataFrame(rows)
    table.loc[(table["init"] == "ssl") & (table["scan_id"] == "p03"), "f2"] = \
        table.loc[(table["init"] == "sap") & (table["scan_id"] == "p03"), "f2"].to_numpy()  # one tie
    return table


def test_paired_values_are_the_paired_table(patients):
    t = paired_values(patients, "f2")
    wide = patients.pivot_table(index="scan_id", columns="init", values="f2")
    assert t["other"].tolist() == ["scratch"] * 7 + ["ssl"] * 7             # INIT_ORDER; p99 has no SAP value
    for r in t.itertuples():
        assert (r.other_value, r.reference_value) == (wide.at[r.scan_id, r.other], wide.at[r.scan_id, "sap"])
        assert r.difference == pytest.approx(r.reference_value - r.other_value)
    med = paired_differences(patients, ["f2"])
    for other in ("scratch", "ssl"):
        assert t[t["other"] == other]["difference"].median() == pytest.approx(med[("f2", "sap", other)])
    with pytest.raises(ConfigError, match="lacks columns"):
        paired_values(patients, "dice_mean")


def test_slopegraph_traces_carry_the_pairs_and_counts(patients):
    fig = slopegraph_figure(patients, "f2", pvalues={("sap", "scratch"): 0.0123, ("sap", "ssl"): 0.9})
    t = paired_values(patients, "f2")
    lines = [tr for tr in fig.data if tr.name and tr.name.startswith("p") and tr.x[0] is not None]
    assert len(lines) == len(t) == 14
    for tr, r in zip(lines, t.itertuples()):     # in the table's order, panel by panel
        assert tr.name == r.scan_id and list(tr.y) == [r.other_value, r.reference_value]
        colour = INIT_COLORS["sap"] if r.difference > 0 else (INIT_COLORS[r.other] if r.difference < 0 else "#c7c7c7")
        assert tr.line.color == colour
    titles = [a.text for a in fig.layout.annotations]
    ssl = t[t["other"] == "ssl"]["difference"]
    assert titles[1].startswith(f"SAP vs SSL: higher in {(ssl > 0).sum()}, lower in {(ssl < 0).sum()}, tied 1")
    assert "p = 0.0123" in titles[0] and f"{ssl.median():+.3f}" in titles[1]
    medians = [tr for tr in fig.data if tr.name == "median of each init"]
    assert list(medians[0].y) == pytest.approx([t[t["other"] == "scratch"]["other_value"].median(),
                                                t[t["other"] == "scratch"]["reference_value"].median()])


def test_a_run_with_one_init_gets_a_figure_that_says_so_not_an_error(patients):
    """A sweep fine-tuning SAP alone (lesion.inits=[sap]) must still run notebook 05 to its end."""
    from types import SimpleNamespace

    from sapkit.plotting.paired_figures import evaluation_slopegraph_figure

    alone = SimpleNamespace(patients=patients[patients["init"] == "sap"], comparisons=pd.DataFrame())
    fig = evaluation_slopegraph_figure(alone, metric="f2")
    assert len(fig.data) == 0 and "Nothing to pair" in fig.layout.annotations[0].text
    assert "['sap']" in fig.layout.annotations[0].text
    with pytest.raises(ConfigError, match="needs two inits"):   # the direct call keeps its error
        slopegraph_figure(alone.patients, "f2")

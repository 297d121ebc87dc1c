"""Shared figures: colours per init, numbers drawn, significance marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.plotting import figures
from sapkit.errors import MetricInputError
from sapkit.plotting.figures import INIT_COLORS


def test_one_distinct_colour_per_init_and_stable_extras():
    assert set(INIT_COLORS) == set(figures.INIT_ORDER) == {"scratch", "ssl", "sap"}
    assert len(set(INIT_COLORS.values())) == 3
    assert figures.init_color("sap/fold_2") == figures.init_color("SAP") == INIT_COLORS["sap"]
    assert figures.init_color("mae") == figures.init_color("mae/fold_0")
    assert figures.init_color("mae") not in INIT_COLORS.values()
    with pytest.raises(TypeError):
        INIT_COLORS["sap"] = "#000000"  # read-only: notebooks cannot drift apart


@pytest.mark.parametrize(("p", "stars"), [(0.0, "***"), (0.00099, "***"), (0.001, "**"), (0.0099, "**"),
                                          (0.01, "*"), (0.049, "*"), (0.05, "ns"), (1.0, "ns"), (float("nan"), "n/a")])
def test_p_to_stars(p, stars):
    assert figures.p_to_stars(p) == stars


def test_p_to_stars_rejects_non_probabilities():
    with pytest.raises(MetricInputError, match=r"in \[0, 1\]"):
        figures.p_to_stars(1.2)


def test_learning_curves_from_csv_files(tmp_path):
    logs = {}
    for init, offset in (("sap", 0.0), ("scratch", 0.3)):
        df = pd.DataFrame({"epoch": [0, 1, 2, 3], "train_loss": np.array([1.0, 0.8, 0.6, 0.5]) + offset,
                           "val_dice": [np.nan, 0.2, np.nan, 0.4 - offset]})
        path = tmp_path / init / "log.csv"
        path.parent.mkdir()
        df.to_csv(path, index=False)
        logs[init] = path
    fig = figures.learning_curves(logs)
    assert [t.name for t in fig.data] == ["Scratch", "SAP", "Scratch", "SAP"]      # metric rows, init order
    assert [t.line.color for t in fig.data] == [INIT_COLORS["scratch"], INIT_COLORS["sap"]] * 2
    np.testing.assert_allclose(fig.data[1].y, [1.0, 0.8, 0.6, 0.5])
    np.testing.assert_allclose(fig.data[3].x, [1, 3])                               # NaN epochs skipped
    np.testing.assert_allclose(fig.data[3].y, [0.2, 0.4])
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert [a.text for a in fig.layout.annotations] == ["train_loss", "val_dice"]


def test_learning_curves_errors(tmp_path):
    with pytest.raises(MetricInputError, match="no file at"):
        figures.learning_curves({"sap": tmp_path / "missing.csv"})
    with pytest.raises(MetricInputError, match="no column 'epoch'"):
        figures.learning_curves({"sap": pd.DataFrame({"step": [0], "loss": [1.0]})})


def test_froc_lines_and_operating_points():
    curves = {"sap": pd.DataFrame({"fp_per_patient": [2.0, 0.5, 1.0], "sensitivity": [0.9, 0.5, 0.7]}),
              "ssl": pd.DataFrame({"fp_per_patient": [0.5, 2.0], "sensitivity": [0.4, 0.8]})}
    fig = figures.froc_figure(curves, operating_points={"sap": (1.0, 0.7)})
    assert [t.name for t in fig.data] == ["SSL", "SAP", "SAP operating point"]
    np.testing.assert_allclose(fig.data[1].x, [0.5, 1.0, 2.0])                      # sorted by FP
    np.testing.assert_allclose(fig.data[1].y, [0.5, 0.7, 0.9])
    assert fig.data[2].marker.color == INIT_COLORS["sap"] and tuple(fig.data[2].x) == (1.0,)
    with pytest.raises(MetricInputError, match="lacks columns"):
        figures.froc_figure({"sap": pd.DataFrame({"fp": [1.0]})})


def test_box_plot_with_significance_brackets():
    df = pd.DataFrame({"init": ["sap"] * 3 + ["ssl"] * 3 + ["scratch"] * 3,
                       "dice": [0.7, 0.8, 0.9, 0.5, 0.6, 0.7, 0.4, 0.5, 0.6]})
    fig = figures.box_figure(df, value="dice", pvalues={("sap", "scratch"): 0.004, ("sap", "ssl"): 0.2})
    assert [t.name for t in fig.data] == ["Scratch", "SSL", "SAP"]
    np.testing.assert_allclose(fig.data[2].y, [0.7, 0.8, 0.9])
    assert [a.text for a in fig.layout.annotations] == ["**", "ns"]
    assert [a.x for a in fig.layout.annotations] == [1.0, 1.5]                       # scratch(0)–sap(2), ssl(1)–sap(2)
    assert len(fig.layout.shapes) == 2
    top, span = 0.9, 0.5
    assert fig.layout.annotations[0].y == pytest.approx(top + span * 0.12)
    assert fig.layout.annotations[1].y == pytest.approx(top + span * 0.24)         # stacked above the first
    assert fig.layout.shapes[0].path == f"M 0,{top + span * 0.06} L 0,{top + span * 0.12} L 2,{top + span * 0.12} L 2,{top + span * 0.06}"
    with pytest.raises(MetricInputError, match="names a group not in the table"):
        figures.box_figure(df, value="dice", pvalues={("sap", "mae"): 0.01})


def test_detection_by_volume_numbers_and_empty_bins():
    lesions = pd.DataFrame({
        "init": ["sap"] * 5 + ["ssl"] * 2,
        "volume_ml": [0.1, 0.2, 0.6, 1.5, 7.0, 0.1, 7.0],
        "detected": [False, True, True, True, True, False, False]})
    table = figures.detection_by_volume(lesions, bin_edges_ml=(0.0, 0.5, 1.0, np.inf))
    assert table["group"].tolist() == ["ssl"] * 3 + ["sap"] * 3
    assert table["bin"].tolist()[:3] == ["0–0.5 mL", "0.5–1 mL", "≥ 1 mL"]
    assert table["n_lesions"].tolist() == [1, 0, 1, 2, 1, 2]
    assert table["n_detected"].tolist() == [0, 0, 0, 1, 1, 2]
    rates = table["detection_rate"].to_numpy()
    assert np.isnan(rates[1]) and rates[[0, 2, 3, 4, 5]].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    fig = figures.volume_detection_figure(lesions, bin_edges_ml=(0.0, 0.5, 1.0, np.inf))
    assert [t.name for t in fig.data] == ["SSL", "SAP"]
    assert list(fig.data[1].text) == ["1/2", "1/1", "2/2"] and fig.data[1].marker.color == INIT_COLORS["sap"]
    with pytest.raises(MetricInputError, match="increasing"):
        figures.detection_by_volume(lesions, bin_edges_ml=(1.0, 0.5))


def test_per_bone_dice_means_and_std():
    df = pd.DataFrame({"init": ["sap"] * 4 + ["scratch"] * 2,
                       "bone": ["femur", "femur", "pelvis", "pelvis", "femur", "pelvis"],
                       "dice": [0.8, 0.9, 0.6, np.nan, 0.5, 0.4]})
    fig = figures.per_bone_dice_figure(df, bone_order=["pelvis", "femur"])
    assert [t.name for t in fig.data] == ["Scratch", "SAP"]
    assert list(fig.data[1].x) == ["pelvis", "femur"]
    np.testing.assert_allclose(fig.data[1].y, [0.6, 0.85])                          # NaN skipped
    np.testing.assert_allclose(fig.data[1].error_y.array, [0.0, np.std([0.8, 0.9], ddof=1)])
    single = figures.per_bone_dice_figure(df.drop(columns="init"))
    assert len(single.data) == 1 and single.data[0].marker.color == INIT_COLORS["sap"]

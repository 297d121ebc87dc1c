"""sapkit.plotting.figures: numbers drawn, colours per init, readable titles, significance marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.errors import ConfigError
from sapkit.evaluation.statistics import TestResult
from sapkit.plotting import figures
from sapkit.plotting.colors import INIT_COLORS


@pytest.mark.parametrize(("p", "stars"), [(0.0, "***"), (0.00099, "***"), (0.001, "**"), (0.0099, "**"),
                                          (0.01, "*"), (0.049, "*"), (0.05, "ns"), (1.0, "ns"), (float("nan"), "n/a")])
def test_p_to_stars(p, stars):
    assert figures.p_to_stars(p) == stars


def test_p_to_stars_rejects_non_probabilities():
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
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
    assert [t.mode for t in fig.data] == ["lines+markers"] * 2 + ["markers"] * 2  # validation at 2 of 4 epochs: no line
    assert [a.text for a in fig.layout.annotations] == ["train loss", "validation Dice"]   # readable, not raw
    assert fig.layout.xaxis2.title.text == "epoch"


def test_learning_curves_errors(tmp_path):
    with pytest.raises(ConfigError, match="no file at"):
        figures.learning_curves({"sap": tmp_path / "missing.csv"})
    with pytest.raises(ConfigError, match="no column 'epoch'"):
        figures.learning_curves({"sap": pd.DataFrame({"step": [0], "loss": [1.0]})})


def test_box_plot_with_significance_brackets():
    df = pd.DataFrame({"init": ["sap"] * 3 + ["ssl"] * 3 + ["scratch"] * 3,
                       "dice": [0.7, 0.8, 0.9, 0.5, 0.6, 0.7, 0.4, 0.5, 0.6]})
    fig = figures.box_figure(df, value="dice", pvalues={("sap", "scratch"): 0.004,
                                                        ("sap", "ssl"): TestResult("wilcoxon", 3.0, 0.2, 3)})
    assert [t.name for t in fig.data] == ["Scratch", "SSL", "SAP"]
    np.testing.assert_allclose(fig.data[2].y, [0.7, 0.8, 0.9])
    # the neighbours' bracket (SSL–SAP) lowest, the wide one (scratch–SAP) above it (issue 25: the wide
    # bracket's star used to sit on the left leg of the SSL–SAP bracket drawn above it)
    assert [a.text for a in fig.layout.annotations] == ["ns", "**"]
    assert [a.x for a in fig.layout.annotations] == [1.5, 1.0]                       # ssl(1)–sap(2), scratch(0)–sap(2)
    assert len(fig.layout.shapes) == 2
    assert fig.layout.yaxis.title.text == "Dice" and fig.layout.xaxis.title.text == "initialisation"
    assert fig.layout.annotations[0].hovertext == "p = 0.2"                        # a TestResult's p_value
    top, span = 0.9, 0.5
    assert fig.layout.annotations[0].y == pytest.approx(top + span * 0.12)
    assert fig.layout.annotations[1].y == pytest.approx(top + span * 0.24)         # stacked above the first
    assert fig.layout.shapes[1].path == f"M 0,{top + span * 0.18} L 0,{top + span * 0.24} L 2,{top + span * 0.24} L 2,{top + span * 0.18}"
    for level, star in enumerate(fig.layout.annotations):  # no star under a leg of a higher bracket
        for shape in fig.layout.shapes[level + 1:]:
            legs = {float(shape.path.split()[1].split(",")[0]), float(shape.path.split()[-1].split(",")[0])}
            assert star.x not in legs
    assert fig.layout.yaxis.range[1] >= fig.layout.annotations[-1].y + span * 0.05  # the top star is in view
    with pytest.raises(ConfigError, match="names a group not in the table"):
        figures.box_figure(df, value="dice", pvalues={("sap", "mae"): 0.01})


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
    assert single.layout.yaxis.title.text == "Dice" and single.layout.xaxis.title.text == "bone"


def test_per_bone_dice_by_propagation_stage():
    df = pd.DataFrame({"stage": ["global", "per-bone"] * 2, "bone": ["femur L"] * 2 + ["sternum"] * 2,
                       "dice": [0.5, 0.9, 0.7, 0.8]})
    fig = figures.per_bone_dice_figure(df, group="stage")
    assert [t.name for t in fig.data] == ["global", "per-bone"]
    np.testing.assert_allclose(fig.data[1].y, [0.9, 0.8])
    assert fig.data[0].marker.color != fig.data[1].marker.color
    assert fig.layout.legend.title.text == "stage"


def test_label_efficiency_averages_over_other_axes():
    summary = pd.DataFrame({"init": ["sap", "sap", "sap", "scratch"], "lesion.label_fraction": [0.5, 0.5, 1.0, 1.0],
                            "median_f2": [0.2, 0.4, 0.6, 0.1], "median_dice": [0.1, 0.3, 0.5, 0.05]})
    fig = figures.label_efficiency_figure(summary)
    assert [t.name for t in fig.data] == ["Scratch", "Scratch", "SAP", "SAP"]
    np.testing.assert_allclose(fig.data[2].x, [0.5, 1.0])
    np.testing.assert_allclose(fig.data[2].y, [0.3, 0.6])                           # mean of 0.2 and 0.4
    np.testing.assert_allclose(fig.data[3].y, [0.2, 0.5])
    assert fig.data[2].line.color == INIT_COLORS["sap"]
    assert [a.text for a in fig.layout.annotations] == ["median patient F2", "median per-patient Dice"]
    numbered = figures.label_efficiency_figure(summary.drop(columns="lesion.label_fraction"))
    assert list(numbered.data[2].x) == [0, 1, 2]
    with pytest.raises(ConfigError, match="aggregate_runs"):
        figures.label_efficiency_figure(summary.drop(columns="median_f2"))


def test_learning_curves_tell_folds_apart():
    log = pd.DataFrame({"epoch": range(7), "loss": [np.nan, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5],
                        "val_dice_mean": [0.1, np.nan, np.nan, np.nan, np.nan, np.nan, 0.4]})
    logs = {f"{init}/fold_{k}": log for init in ("scratch", "ssl", "sap") for k in (0, 1, "tune")}
    fig = figures.learning_curves(logs, metrics=["loss", "val_dice_mean"])
    loss = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(loss) == 9 and all(t.opacity < 1 for t in fig.data)  # one init's line never hides another's
    dashes = {(t.line.color, t.line.dash) for t in loss}
    assert len(dashes) == 9  # the folds of an init share its colour, each with its own dash
    assert {t.marker.symbol for t in loss} == {"circle", "square", "diamond"}  # scratch, SSL, SAP
    val = [t for t in fig.data if t.mode == "markers"]
    assert len(val) == 9 and all(list(t.x) == [0, 6] for t in val)  # epochs 0 and 6: points, no diagonal

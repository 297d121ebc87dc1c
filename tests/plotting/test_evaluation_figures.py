"""sapkit.plotting.evaluation_figures: FROC, threshold, box plots and detection figures from result objects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sapkit.errors import ConfigError
from sapkit.evaluation.cohort import RunEvaluation
from sapkit.metrics import FrocCurve, ThresholdChoice, froc_auc
from sapkit.plotting import evaluation_figures as ef
from sapkit.plotting.colors import INIT_COLORS

THRESHOLDS = np.array([0.25, 0.5, 0.75])


def _curve(fp, sens, *, subset="all", max_fp=15.0) -> FrocCurve:
    fp, sens = np.asarray(fp, float), np.asarray(sens, float)
    return FrocCurve(THRESHOLDS, fp, sens, froc_auc(fp, sens, max_fp=max_fp), max_fp, subset, 4, 10)


def _choice(threshold: float, value: float) -> ThresholdChoice:
    curve = pd.DataFrame({"threshold": THRESHOLDS, "f2": [0.3, value, 0.2], "n_scans": [4, 4, 4]})
    return ThresholdChoice(threshold, value, "median", curve)


@pytest.fixture
def evaluation() -> RunEvaluation:
    """A hand-made RunEvaluation of two inits over three test patients."""
    froc = {"sap": {"all": _curve([3.0, 1.0, 0.5], [0.9, 0.7, 0.4]), "large": _curve([1.0, 0.5, 0.0], [1.0, 0.8, 0.5],
                                                                                     subset="large", max_fp=4.0)},
            "scratch": {"all": _curve([4.0, 2.0, 1.0], [0.6, 0.4, 0.2]),
                        "large": _curve([2.0, 1.0, 0.5], [0.7, 0.5, 0.2], subset="large", max_fp=4.0)}}
    patients = pd.DataFrame({"init": ["sap"] * 3 + ["scratch"] * 3, "scan_id": ["a", "b", "c"] * 2,
                             "f2": [0.8, 0.6, 0.9, 0.3, 0.2, 0.5], "dice_mean": [0.7, 0.5, 0.6, 0.4, 0.1, 0.3]})
    comparisons = pd.DataFrame({"metric": ["f2", "dice_mean"], "a": ["sap", "sap"], "b": ["scratch", "scratch"],
                                "test": ["wilcoxon"] * 2, "statistic": [0.0, 0.0], "p_value": [0.004, 0.3],
                                "p_bonferroni": [0.008, 0.6], "n": [3, 3]})
    empty = pd.DataFrame()
    return RunEvaluation(empty, empty, patients, empty, {"sap": _choice(0.5, 0.7), "scratch": _choice(0.25, 0.4)},
                         froc, empty, empty, comparisons)


# ----------------------------------------------------------------------------- FROC
def test_froc_figure_from_frames_sorted_with_operating_points():
    curves = {"sap": pd.DataFrame({"fp_per_exam": [2.0, 0.5, 1.0], "sensitivity": [0.9, 0.5, 0.7]}),
              "ssl": pd.DataFrame({"fp_per_exam": [0.5, 2.0], "sensitivity": [0.4, 0.8]})}
    fig = ef.froc_figure(curves, operating_points={"sap": (1.0, 0.7)})
    assert [t.name for t in fig.data] == ["SSL", "SAP", "SAP operating point"]
    np.testing.assert_allclose(fig.data[1].x, [0.5, 1.0, 2.0])                      # sorted by FP
    np.testing.assert_allclose(fig.data[1].y, [0.5, 0.7, 0.9])
    assert fig.data[2].marker.color == INIT_COLORS["sap"] and tuple(fig.data[2].x) == (1.0,)
    assert fig.layout.xaxis.title.text == "false positives per exam"
    assert fig.layout.yaxis.title.text == "lesion sensitivity"
    with pytest.raises(ConfigError, match="lacks columns"):
        ef.froc_figure({"sap": pd.DataFrame({"fp_per_patient": [1.0], "sensitivity": [0.5]})})


def test_froc_figure_takes_curves_and_their_frames_alike():
    curve = _curve([3.0, 1.0, 0.5], [0.9, 0.7, 0.4])
    from_curve = ef.froc_figure({"sap": curve})
    from_frame = ef.froc_figure({"sap": curve.to_frame()})
    np.testing.assert_allclose(from_curve.data[0].x, from_frame.data[0].x)
    np.testing.assert_allclose(from_curve.data[0].y, [0.4, 0.7, 0.9])
    assert from_curve.data[0].name == f"SAP (AUC≤15 = {curve.auc:.2f})" and from_frame.data[0].name == "SAP"


def test_froc_keeps_operating_points_and_the_limit_label_in_view():
    curves = {"sap": _curve([3.0, 1.0, 0.0], [1.0, 0.9, 0.8], max_fp=4.0),
              "scratch": _curve([20.0, 6.0, 2.0], [0.9, 0.7, 0.4], max_fp=4.0)}
    fig = ef.froc_figure(curves, operating_points={"sap": (0.0, 1.0), "scratch": (6.0, 0.7)})
    low, high = fig.layout.xaxis.range
    assert low < 0 and high >= 6.0 * 1.05  # SAP at 0 FP/exam not cut in half, scratch beyond the limit shown
    assert fig.layout.yaxis.range[1] > 1.0 and all(t.cliponaxis is False for t in fig.data if t.mode == "markers")
    label = [a for a in fig.layout.annotations if a.text.startswith("AUC limit")]
    assert len(label) == 1 and label[0].yref == "paper" and label[0].y == 1 and label[0].yanchor == "bottom"  # above the curves


def test_operating_points_read_the_tuned_threshold():
    curve = _curve([3.0, 1.0, 0.5], [0.9, 0.7, 0.4])
    assert ef.operating_points({"sap": curve, "ssl": curve}, {"sap": 0.5, "ssl": 0.6}) == {"sap": (1.0, 0.7)}


def test_evaluation_froc_figure_per_subset(evaluation):
    fig = ef.evaluation_froc_figure(evaluation)
    assert fig.layout.title.text == "FROC, all lesions"
    assert [t.name for t in fig.data][:2] == [f"Scratch (AUC≤15 = {evaluation.froc['scratch']['all'].auc:.2f})",
                                              f"SAP (AUC≤15 = {evaluation.froc['sap']['all'].auc:.2f})"]
    points = {t.name: (t.x[0], t.y[0]) for t in fig.data[2:]}
    assert points == {"Scratch operating point": (4.0, 0.6), "SAP operating point": (1.0, 0.7)}
    large = ef.evaluation_froc_figure(evaluation, subset="large")
    assert large.layout.title.text == "FROC, lesions ≥ 1 mL" and "AUC≤4" in large.data[0].name
    np.testing.assert_allclose(large.data[1].y, [0.5, 0.8, 1.0])
    with pytest.raises(ConfigError, match="subset must be one of"):
        ef.evaluation_froc_figure(evaluation, subset="small")


def test_threshold_curve_marks_each_choice(evaluation):
    fig = ef.threshold_curve_figure(evaluation.thresholds)
    assert [t.name for t in fig.data if t.showlegend is not False] == ["Scratch", "SAP"]
    diamonds = [t for t in fig.data if t.mode == "markers"]
    assert [(t.x[0], t.y[0]) for t in diamonds] == [(0.25, 0.4), (0.5, 0.7)]
    assert diamonds[1].marker.color == INIT_COLORS["sap"]
    assert fig.layout.xaxis.title.text == "probability threshold"
    assert fig.layout.yaxis.title.text == "median patient F2"


# ----------------------------------------------------------------------------- box plots
def test_comparison_pvalues_pick_one_metric():
    table = pd.DataFrame({"metric": ["f2", "f2", "dice_mean"], "a": ["sap"] * 3, "b": ["scratch", "ssl", "ssl"],
                          "p_value": [0.01, 0.2, 0.3], "p_bonferroni": [0.02, 0.4, 0.6]})
    assert ef.comparison_pvalues(table, "f2") == {("sap", "scratch"): 0.02, ("sap", "ssl"): 0.4}
    assert ef.comparison_pvalues(table, "dice_mean", column="p_value") == {("sap", "ssl"): 0.3}
    assert ef.comparison_pvalues(table, "nsd") == {}
    with pytest.raises(ConfigError, match="compare_inits"):
        ef.comparison_pvalues(table.drop(columns="p_bonferroni"), "f2")


def test_evaluation_box_figure_uses_corrected_pvalues(evaluation):
    fig = ef.evaluation_box_figure(evaluation, metric="f2")
    assert [t.name for t in fig.data] == ["Scratch", "SAP"]
    np.testing.assert_allclose(fig.data[1].y, [0.8, 0.6, 0.9])
    assert [a.text for a in fig.layout.annotations] == ["**"]                      # p_bonferroni 0.008
    assert fig.layout.annotations[0].hovertext == "p = 0.008"
    assert fig.layout.title.text == fig.layout.yaxis.title.text == "patient F2"
    dice = ef.evaluation_box_figure(evaluation, metric="dice_mean", title="Dice")
    assert [a.text for a in dice.layout.annotations] == ["ns"] and dice.layout.title.text == "Dice"
    assert dice.layout.yaxis.title.text.startswith("mean lesion Dice per patient")


# ----------------------------------------------------------------------------- detection by volume
def test_detection_by_volume_numbers_and_empty_bins():
    lesions = pd.DataFrame({
        "init": ["sap"] * 5 + ["ssl"] * 2,
        "volume_ml": [0.1, 0.2, 0.6, 1.5, 7.0, 0.1, 7.0],
        "detected": [False, True, True, True, True, False, False]})
    table = ef.detection_by_volume(lesions, bin_edges_ml=(0.0, 0.5, 1.0, np.inf))
    assert table["group"].tolist() == ["ssl"] * 3 + ["sap"] * 3
    assert table["bin"].tolist()[:3] == ["0–0.5 mL", "0.5–1 mL", "≥ 1 mL"]
    assert table["n_lesions"].tolist() == [1, 0, 1, 2, 1, 2]
    assert table["n_detected"].tolist() == [0, 0, 0, 1, 1, 2]
    rates = table["detection_rate"].to_numpy()
    assert np.isnan(rates[1]) and rates[[0, 2, 3, 4, 5]].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    fig = ef.volume_detection_figure(lesions, bin_edges_ml=(0.0, 0.5, 1.0, np.inf))
    assert [t.name for t in fig.data] == ["SSL", "SAP"]
    assert list(fig.data[1].text) == ["1/2", "1/1", "2/2"] and fig.data[1].marker.color == INIT_COLORS["sap"]
    assert fig.layout.yaxis.title.text == "detection rate"
    with pytest.raises(ConfigError, match="increasing"):
        ef.detection_by_volume(lesions, bin_edges_ml=(1.0, 0.5))

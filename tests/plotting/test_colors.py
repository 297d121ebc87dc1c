"""sapkit.plotting.colors: one colour convention (reference green, prediction cyan, inits, named bone legend)."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import ConfigError
from sapkit.label_maps import SKELETON_CLASSES
from sapkit.plotting.colors import (BONE_COLORS, INIT_COLORS, INIT_ORDER, LABEL_COLORS, PREDICTION_COLOR,
                                    REFERENCE_COLOR, axis_title, init_color, label_color, label_legend)
from sapkit.plotting.slices import label_overlay_figure, slice_figure


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], float)


def test_reference_is_green_and_prediction_is_cyan():
    r, g, b = _rgb(REFERENCE_COLOR)
    assert g > 1.5 * max(r, b)                                  # green dominates
    r, g, b = _rgb(PREDICTION_COLOR)
    assert min(g, b) > 200 and r < 50                           # cyan: green + blue, no red


def test_label_palette_avoids_the_reference_and_prediction_hues():
    for colour in LABEL_COLORS:
        r, g, b = _rgb(colour)
        assert not (g > 1.5 * max(r, b)), f"{colour} looks like the green reference"
        assert not (min(g, b) > 200 and r < 50), f"{colour} looks like the cyan prediction"
    assert len(set(LABEL_COLORS)) == len(LABEL_COLORS)


def test_one_distinct_colour_per_init_and_stable_extras():
    assert set(INIT_COLORS) == set(INIT_ORDER) == {"scratch", "ssl", "sap"}
    assert len(set(INIT_COLORS.values())) == 3
    assert init_color("sap/fold_2") == init_color("SAP") == INIT_COLORS["sap"]
    assert init_color("mae") == init_color("mae/fold_0")
    assert init_color("mae") not in INIT_COLORS.values()
    assert init_color("mae") not in (REFERENCE_COLOR, PREDICTION_COLOR)
    with pytest.raises(TypeError):
        INIT_COLORS["sap"] = "#000000"  # read-only: notebooks cannot drift apart


def test_bone_classes_have_fixed_distinct_colours_and_names_in_label_order():
    assert list(BONE_COLORS) == list(range(1, 10))
    assert len(set(BONE_COLORS.values())) == 9
    assert all(BONE_COLORS[k] == label_color(k) for k in BONE_COLORS)
    legend = label_legend(range(10), SKELETON_CLASSES)
    assert [k for k, _, _ in legend] == list(range(1, 10))                     # background left out
    assert [name for _, name, _ in legend] == [SKELETON_CLASSES[k] for k in range(1, 10)]
    assert [c for _, _, c in legend] == [BONE_COLORS[k] for k in range(1, 10)]
    assert label_legend([7, 2, 7, 0]) == [(2, "label 2", label_color(2)), (7, "label 7", label_color(7))]
    with pytest.raises(ConfigError, match="0 is background"):
        label_color(0)


def test_figures_use_the_convention():
    image = np.random.default_rng(0).random((10, 8, 12)).astype(np.float32)
    skeleton = np.zeros(image.shape, np.int16)
    skeleton[2:5, 2:6, 1:10] = 3
    skeleton[6:9, 2:6, 3:7] = 1
    reference = np.zeros(image.shape, bool)
    reference[3:5, 3:5, 4:6] = True
    for fig in (slice_figure(image, skeleton, reference, spacing_mm=1.0, reference=reference,
                             label_names=SKELETON_CLASSES),
                label_overlay_figure(image, skeleton, spacing_mm=1.0, reference=reference, prediction=reference,
                                     label_names=SKELETON_CLASSES, point=(3, 3, 5))):
        named = {t.name: t for t in fig.data if t.type == "scatter" and t.showlegend is not False}
        assert list(named) == ["cervical spine", "lumbar spine", "reference", "prediction"]
        assert named["reference"].marker.color == REFERENCE_COLOR
        assert named["prediction"].marker.color == PREDICTION_COLOR
        assert named["lumbar spine"].marker.color == BONE_COLORS[3]
        heat = [t for t in fig.data if t.type == "heatmap"]
        assert heat and all(t.showscale is False for t in heat)                  # no continuous colour bar


@pytest.mark.parametrize(("column", "title"), [
    ("f2", "patient F2"), ("loss", "total loss"), ("dice_mean", "mean lesion Dice per patient (missed lesions = 0)"),
    ("fp_per_exam", "false positives per exam"), ("val_loss", "validation loss"),
    ("val_dice_femur", "validation Dice (femur)"), ("lr_decoder", "learning rate (decoder)"),
    ("loss_contrastive", "contrastive loss"), ("val_score", "validation score"), ("my_col", "my col"),
])
def test_axis_titles_are_readable(column, title):
    assert axis_title(column) == title


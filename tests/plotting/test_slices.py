"""sapkit.plotting.slices: the one slice renderer and the figures built on it (slider, three planes, panels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapkit.errors import ConfigError
from sapkit.label_maps import SKELETON_CLASSES
from sapkit.plotting.colors import BONE_COLORS, PREDICTION_COLOR, REFERENCE_COLOR
from sapkit.plotting.slices import (image_panels_figure, label_boundaries, label_overlay_figure, slice_figure,
                                    slice_traces)


def _volume(shape=(12, 10, 16)):
    image = np.linspace(0.0, 1.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    labels = np.zeros(shape, np.int16)
    labels[2:6, 3:7, 4:10] = 1
    labels[8:11, 2:5, 1:3] = 3
    prediction = np.zeros(shape, bool)
    prediction[3:6, 3:6, 5:9] = True
    return image, labels, prediction


# ----------------------------------------------------------------------------- slice_traces
def test_slice_traces_hand_counted_outlines_in_mm():
    image = np.arange(30, dtype=np.float32).reshape(5, 6)               # rows = y (5), columns = x (6)
    labels = np.zeros((5, 6), np.int16)
    labels[1:4, 1:5] = 2                                                 # 3 × 4 block: ring of 10, inside 2
    reference = np.zeros((5, 6), bool)
    reference[0, 0] = True
    traces = slice_traces(image, spacing_mm=(2.0, 3.0), window=(0.0, 29.0), labels=labels,
                          label_names={2: "thoracic spine"}, reference=reference, prediction=np.zeros((5, 6), bool))
    assert [t.name for t in traces] == ["image", "thoracic spine", "reference", "prediction"]
    heat, lab, ref, pred = traces
    assert np.asarray(heat.z).dtype == np.uint8 and int(np.asarray(heat.z)[-1, -1]) == 255
    assert int(np.asarray(heat.z)[0, 0]) == 0 and heat.showscale is False and (heat.dx, heat.dy) == (2.0, 3.0)
    assert len(lab.x) == 10 and lab.marker.color == BONE_COLORS[2]
    assert set(np.asarray(lab.x).tolist()) == {2.0, 4.0, 6.0, 8.0} and set(np.asarray(lab.y).tolist()) == {3.0, 6.0, 9.0}
    assert (tuple(ref.x), tuple(ref.y)) == ((0.0,), (0.0,)) and ref.marker.color == REFERENCE_COLOR
    assert len(pred.x) == 0 and pred.marker.color == PREDICTION_COLOR         # given, empty: still a trace


def test_slice_traces_fixed_label_values_keep_the_trace_count():
    plane = np.zeros((4, 4), np.float32)
    traces = slice_traces(plane, labels=np.zeros((4, 4), np.int16), label_values=[0, 1, 3])
    assert [t.name for t in traces] == ["image", "label 1", "label 3"] and all(len(t.x) == 0 for t in traces[1:])
    with pytest.raises(ConfigError, match="one 2-D plane"):
        slice_traces(np.zeros((2, 2, 2)))
    with pytest.raises(ConfigError, match="reference plane shape"):
        slice_traces(plane, reference=np.zeros((3, 4), bool))


def test_label_boundaries_ring():
    square = np.zeros((3, 6, 6), np.int16)
    square[:, 1:5, 1:5] = 7
    edge = label_boundaries(square, axis=0)
    assert set(np.unique(edge)) == {0, 7}
    assert (edge[1] > 0).sum() == 12 and edge[1, 2:4, 2:4].sum() == 0


# ----------------------------------------------------------------------------- slice_figure
def test_slice_figure_outlines_and_geometry():
    image, labels, prediction = _volume()
    fig = slice_figure(image, labels, prediction, spacing_mm=(1.5, 2.0, 4.0), axis="coronal",
                       label_names=SKELETON_CLASSES)
    assert [t.name for t in fig.data] == ["image", "cervical spine", "lumbar spine", "prediction"]
    assert len(fig.frames) == 10                                                   # one frame per y slice
    assert fig.layout.sliders[0].active == 3                                       # first y holding most prediction
    assert slice_figure(image, spacing_mm=1.0).layout.sliders[0].active == 5       # nothing to show: the middle
    frame = {f.name: f for f in fig.frames}["4"]                                  # y = 4 cuts both labels
    heat, cervical, lumbar, pred = frame.data
    assert np.asarray(heat.z).shape == (16, 12) and (heat.dx, heat.dy) == (1.5, 4.0)
    # label 1 occupies x 2..5, z 4..9: its in-plane ring has 2*4 + 2*6 - 4 = 16 voxels
    xs, zs = np.asarray(cervical.x), np.asarray(cervical.y)
    assert len(xs) == 16 and cervical.marker.color == BONE_COLORS[1]
    assert set((xs / 1.5).round().astype(int)) == {2, 3, 4, 5}
    assert set((zs / 4.0).round().astype(int)) == set(range(4, 10))
    assert len(np.asarray(lumbar.x)) == 3 * 2                                      # 3 × 2 block: all boundary
    assert len(np.asarray(pred.x)) == 3 * 4 - 1 * 2                                # 3×4 square minus its 1×2 inside
    assert {len(f.data) for f in fig.frames} == {4}                                # same traces in every frame
    assert fig.layout.yaxis.scaleanchor == "x"


def test_slice_figure_reference_outline_and_focus():
    image, _, prediction = _volume()
    fig = slice_figure(image, reference=prediction, spacing_mm=1.0, axis="axial")
    assert [t.name for t in fig.data] == ["image", "reference"] and fig.data[1].marker.color == REFERENCE_COLOR
    assert fig.layout.sliders[0].active == 5                                       # first z of the reference


def test_slice_figure_keeps_at_most_max_slices():
    image, _, _ = _volume((6, 6, 40))
    fig = slice_figure(image, spacing_mm=1.0, axis="axial", max_slices=8)
    names = [int(f.name) for f in fig.frames]
    assert len(names) == 8 and names[0] == 0 and names[-1] == 39
    with pytest.raises(ConfigError, match="max_slices"):
        slice_figure(image, spacing_mm=1.0, max_slices=0)


# ----------------------------------------------------------------------------- three planes
def test_label_overlay_figure_three_planes_through_the_point():
    image, labels, prediction = _volume()
    fig = label_overlay_figure(image, labels, spacing_mm=(1.5, 2.0, 4.0), prediction=prediction,
                               label_names=SKELETON_CLASSES, point=(3, 4, 6), title="t")
    assert [a.text for a in fig.layout.annotations] == ["coronal", "sagittal", "axial"]
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert [np.asarray(h.z).shape for h in heat] == [(16, 12), (16, 10), (10, 12)]
    assert [(h.dx, h.dy) for h in heat] == [(1.5, 4.0), (2.0, 4.0), (1.5, 2.0)]
    assert len(fig.data) == 3 * 4                                                 # image, 2 labels, prediction
    assert [t.showlegend for t in fig.data if t.type == "scatter"] == [True] * 3 + [False] * 6
    # the sagittal plane x = 3 cuts label 1 (y 3..6, z 4..9): ring of 2*4 + 2*6 - 4 = 16
    sagittal_label_1 = fig.data[5]
    assert sagittal_label_1.name == "cervical spine" and len(sagittal_label_1.x) == 16
    with pytest.raises(ConfigError, match="not a voxel"):
        label_overlay_figure(image, labels, point=(12, 0, 0))
    with pytest.raises(ConfigError, match="labels shape"):
        label_overlay_figure(image, labels[:5])


# ----------------------------------------------------------------------------- panels
def test_image_panels_share_one_window_and_accept_tensors():
    x = torch.zeros(1, 1, 4, 5, 6)
    x[0, 0, :, :, 3] = 1.0
    fig = image_panels_figure({"clean": x, "half": x * 0.5, "array": np.ones((4, 5, 6), np.float32)},
                              window=(0.0, 1.0), title="p")
    assert [a.text for a in fig.layout.annotations] == ["clean", "half", "array"]
    assert [int(np.asarray(t.z).max()) for t in fig.data] == [255, 127, 255]      # middle axial slice z = 3
    assert np.asarray(fig.data[0].z).shape == (5, 4)
    with pytest.raises(ConfigError, match="different shapes"):
        image_panels_figure({"a": np.zeros((4, 5, 6)), "b": np.zeros((4, 5, 7))})
    with pytest.raises(ConfigError, match="outside"):
        image_panels_figure({"a": np.zeros((4, 5, 6))}, index=6)

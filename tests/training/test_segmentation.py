"""sapkit.training.segmentation: Dice tables, validation and the DiceCE step of the segmentation tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sapkit.errors import SapkitError
from sapkit.metrics import dice_per_class
from sapkit.training.segmentation import dice_ce_step, per_class_dice_table, segmentation_validator


def test_per_class_dice_hand_values():
    pred = np.array([0, 1, 1, 2, 2, 0])
    truth = np.array([0, 1, 0, 2, 0, 0])
    t = per_class_dice_table(truth, pred, class_names={0: "bg", 1: "a", 2: "b", 3: "c"})
    d = dict(zip(t["region"], t["dice"]))
    assert d["a"] == pytest.approx(2 / 3) and d["b"] == pytest.approx(2 / 3) and math.isnan(d["c"])
    assert "bg" not in d  # background is never scored
    assert d["whole skeleton"] == pytest.approx(2 * 2 / (2 + 4))


def test_one_dice_the_metrics_one():
    """Training curves and notebook tables use sapkit.metrics.dice_per_class, number for number."""
    rng = np.random.default_rng(0)
    pred, truth = rng.integers(0, 5, (12, 10, 8)), rng.integers(0, 5, (12, 10, 8))
    table = per_class_dice_table(truth, pred, class_names={0: "bg", 1: "a", 2: "b", 3: "c", 4: "d"}, scan_id="s1")
    assert table["region"].tolist() == ["a", "b", "c", "d", "whole skeleton"] and set(table["scan_id"]) == {"s1"}
    fg = dice_per_class((truth > 0).astype(np.uint8), (pred > 0).astype(np.uint8), classes=[1])[1]
    assert table["dice"].iloc[-1] == fg and table["dice"].iloc[0] == dice_per_class(truth, pred, classes=[1])[1]
    assert table["dice"].iloc[:4].tolist() == list(dice_per_class(truth, pred, classes=range(1, 5)).values())


def test_empty_maps_give_nan_and_shapes_must_match():
    empty = np.zeros((3, 3, 3), np.int16)
    table = per_class_dice_table(empty, empty, class_names={0: "bg", 1: "a"})
    assert table["dice"].isna().all() and len(table) == 2
    with pytest.raises(SapkitError, match=r"label maps differ in shape: gt \(3, 3, 4\) vs pred \(3, 3, 3\)"):
        per_class_dice_table(np.zeros((3, 3, 4), np.int16), empty, class_names={0: "bg", 1: "a"})


def test_validator_scores_mean_dice_and_dice_ce_step_is_a_loss():
    from types import SimpleNamespace

    truth = np.zeros((8, 8, 8), np.int16)
    truth[2:6, 2:6, 2:6] = 1
    case = SimpleNamespace(scan_id="s0", image=np.stack([truth, truth]).astype(np.float32), skeleton=truth)

    class Oracle(torch.nn.Module):  # logits that reproduce channel 0 as the label
        def forward(self, x):
            return torch.cat([1 - x[:, :1], x[:, :1]], dim=1) * 10

    infer = SimpleNamespace(overlap=0.25, sw_batch_size=2, amp=False, amp_dtype="auto")
    assert segmentation_validator([], label="skeleton", class_names={0: "bg", 1: "a"}, roi=(8, 8, 8),
                                  infer_config=infer) is None
    validate = segmentation_validator([case], label="skeleton", class_names={0: "bg", 1: "a"}, roi=(8, 8, 8),
                                      infer_config=infer)
    scores = validate(Oracle(), torch.device("cpu"))
    assert scores == {"score": 1.0, "dice_a": 1.0, "dice_mean": 1.0, "dice_foreground": 1.0}
    x = torch.from_numpy(case.image)[None]
    y = torch.from_numpy(truth.astype(np.int64))[None, None]
    perfect = dice_ce_step()(Oracle(), x, y, torch.Generator(), None)["loss"]
    wrong = dice_ce_step()(Oracle(), x, 1 - y, torch.Generator(), None)["loss"]
    assert 0 <= float(perfect) < 0.01 < float(wrong)

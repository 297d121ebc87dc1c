"""sapkit.training.model_card: MODEL_CARD.md states the config, the channel order and the given metrics."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sapkit.config import load_config
from sapkit.io.run_paths import ModelDir
from sapkit.training.model_card import write_model_card

LOG = pd.DataFrame({"epoch": [0, 1, 2, 3], "loss": [np.nan, 0.9, 0.7, 0.6],
                    "val_dice_mean": [0.1, np.nan, 0.51234, np.nan], "val_dice_foreground": [0.2, np.nan, 0.66667, np.nan]})
CARD = {"summary": "Skeleton segmentation for the test.", "label_map": {0: "background", 1: "cervical spine", 9: "sternum"},
        "data": "3 healthy scans", "roi": (32, 32, 16), "training": "DiceCE, Adam.", "intended_use": "Tests only.",
        "limits": "None known."}


def _metrics_table(text: str) -> dict[str, float]:
    """The ``| metric | value |`` rows of the card, read back."""
    rows = re.findall(r"^\| (\w+) \| ([0-9.]+) \|$", text, flags=re.M)
    return {name: float(value) for name, value in rows}


def _label_map(text: str) -> dict[int, str]:
    block = text.split("**Outputs / label map.**", 1)[1].split("**Training data.**", 1)[0]
    return {int(k): v for k, v in re.findall(r"^- (\d+): (.+)$", block, flags=re.M)}


@pytest.fixture()
def config():
    return load_config("smoke", {"seed": 7, "skeleton.epochs": 3, "preprocess.clip_percentiles": [0.5, 99.5]})


def test_card_round_trips_config_channels_labels_and_metrics(tmp_path, config):
    path = write_model_card(tmp_path, task="skeleton", config=config, log=LOG, card=CARD, best_score=0.51234)
    assert path == ModelDir(tmp_path).model_card and path.is_file()
    text = path.read_text()
    # the last validated epoch (2), to 4 decimals, read back from the table
    assert _metrics_table(text) == {"dice_mean": 0.5123, "dice_foreground": 0.6667}
    assert _label_map(text) == CARD["label_map"]
    assert "2 channels in this order: 0 = T1-weighted, 1 = DWI b = 1000 s/mm²" in text
    assert "clipped to its 0.5–99.5 percentile" in text and "Patch [32, 32, 16] voxels" in text
    assert f"unet (channels {list(config.model.channels)}), profile `smoke`, seed 7." in text
    assert "Epochs 3;" in text and "best validation score 0.5123" in text
    for key in ("summary", "data", "training", "intended_use", "limits"):
        assert CARD[key] in text
    assert [p.name for p in tmp_path.iterdir()] == ["MODEL_CARD.md"]  # written atomically, nothing left over


def test_card_without_validation_or_labels_says_so(tmp_path, config):
    log = LOG.drop(columns=["val_dice_mean", "val_dice_foreground"])
    text = write_model_card(tmp_path, task="ssl", config=config, log=log, card={}, best_score=float("nan")).read_text()
    assert _metrics_table(text) == {} and "| (none) | |" in text
    assert "- (self-supervised: no segmentation classes)" in text and _label_map(text) == {}
    assert f"Epochs {config.ssl.epochs};" in text and "best validation score nan" in text
    assert "not a medical device" in text  # generic intended use stands in for a missing one
    again = write_model_card(tmp_path, task="ssl", config=config, log=log, card={}, best_score=float("nan"))
    assert again.read_text() == text  # deterministic: rewriting gives the same card

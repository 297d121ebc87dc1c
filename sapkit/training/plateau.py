"""Models that never left the all-background solution: read from their ``log.csv``.

A lesion model trained with DiceCE (``include_background=False``) that predicts no lesion anywhere
sits at a loss of about 1: the Dice term of an empty prediction is 1 and the cross-entropy of
confident background is near 0. A model whose **last training loss is ≥ 0.95** and whose **last
validation lesion Dice is 0** has stayed there (trained models of the demo end at 0.72–0.93 with
validation Dice > 0). Its held-out patients then score 0 whatever the init is worth, so a table
that pools them mostly records which models took off (docs/reproducibility.md §5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PLATEAU_LOSS", "on_background_plateau", "stuck_models"]

#: Last training loss (DiceCE) at or above which a model with validation Dice 0 counts as stuck.
PLATEAU_LOSS = 0.95


def on_background_plateau(log: pd.DataFrame) -> bool:
    """True when the log's last loss is ≥ :data:`PLATEAU_LOSS` and its last validation lesion Dice is 0.

    Examples
    --------
    >>> log = pd.DataFrame({"epoch": [0, 1, 2], "loss": [np.nan, 1.3, 1.001], "val_dice_lesion": [0.0, np.nan, 0.0]})
    >>> on_background_plateau(log), on_background_plateau(log.assign(val_dice_lesion=[0.0, np.nan, 0.2]))
    (True, False)
    """
    if "loss" not in log or "val_dice_lesion" not in log:
        return False
    loss, val = log["loss"].dropna(), log["val_dice_lesion"].dropna()
    if loss.empty or val.empty or len(log) < 2:
        return False
    return bool(loss.iloc[-1] >= PLATEAU_LOSS and val.iloc[-1] == 0.0)


def stuck_models(lesion_dir: str | Path) -> pd.DataFrame:
    """``init, fold, last_loss, last_val_dice`` of every ``<init>/fold_<k>/log.csv`` under ``lesion_dir`` on the plateau."""
    rows = []
    for log_csv in sorted(Path(lesion_dir).glob("*/fold_*/log.csv")):
        try:
            log = pd.read_csv(log_csv)
        except (OSError, ValueError):
            continue
        if on_background_plateau(log):
            rows.append({"init": log_csv.parent.parent.name, "fold": log_csv.parent.name.removeprefix("fold_"),
                         "last_loss": float(log["loss"].dropna().iloc[-1]),
                         "last_val_dice": float(log["val_dice_lesion"].dropna().iloc[-1])})
    return pd.DataFrame(rows, columns=["init", "fold", "last_loss", "last_val_dice"]).astype({"last_loss": np.float64})

"""``MODEL_CARD.md``: what a trained sapkit model is, was trained on, and is (not) for."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from sapkit.config import Config, config_to_dict
from sapkit.io.atomic import atomic_write_text
from sapkit.io.machine import machine_info, machine_summary
from sapkit.io.run_paths import ModelDir

__all__ = ["write_model_card"]


def write_model_card(out_dir: str | Path, *, task: str, config: Config, log: pd.DataFrame, card: Mapping[str, Any],
                     best_score: float) -> Path:
    """Write ``out_dir/MODEL_CARD.md`` (atomically) for a trained model.

    Parameters
    ----------
    out_dir : str or Path
        Task folder (exists).
    task : {"skeleton", "ssl", "lesion"}
        Task name; ``config.<task>.epochs`` is quoted.
    config : Config
        Resolved configuration (model, preprocessing, profile, seed).
    log : pandas.DataFrame
        ``log.csv`` content; the last row with ``val_*`` values is tabulated.
    card : mapping
        Optional facts: ``summary``, ``label_map`` (class index → name), ``data``, ``roi``
        (voxels), ``training``, ``intended_use``, ``limits``; generic text stands in for missing ones.
    best_score : float
        Best validation score (NaN if never validated).

    Returns
    -------
    Path
        The card's path.
    """
    out_dir = Path(out_dir)
    best = best_score
    val_cols = [c for c in log.columns if c.startswith("val_")]
    last_val = log.dropna(subset=val_cols, how="all").tail(1) if val_cols else log.iloc[0:0]
    metrics = "\n".join(f"| {c[4:]} | {last_val[c].iloc[0]:.4f} |" for c in val_cols if len(last_val)) or "| (none) | |"
    labels = "\n".join(f"- {k}: {v}" for k, v in card.get("label_map", {}).items())
    text = f"""# Model card — sapkit {task} model

**Task.** {card.get('summary', task)}

**Architecture.** {config.model.backbone} ({'feature size ' + str(config.model.feature_size) if config.model.backbone == 'swinunetr' else 'channels ' + str(list(config.model.channels))}), profile `{config.profile}`, seed {config.seed}.

**Inputs.** {config.model.in_channels} channels in this order: 0 = T1-weighted, 1 = DWI b = 1000 s/mm² (resampled onto the T1 grid). Each channel clipped to its {config.preprocess.clip_percentiles[0]:g}–{config.preprocess.clip_percentiles[1]:g} percentile over the whole volume and rescaled to [0, 1] — the same at inference (`sapkit.data.intensity.scale_intensity`). Patch {list(card.get('roi', []))} voxels.

**Outputs / label map.**
{labels or '- (self-supervised: no segmentation classes)'}

**Training data.** {card.get('data', 'see config.yaml')}

**Training.** {card.get('training', '')} Epochs {config_to_dict(config)[task]['epochs']}; trained on {machine_summary(machine_info())} — the same commit gives bit-identical weights on the same CPU, not on another (docs/reproducibility.md); files: `model_final.pt` (last epoch), `model_best.pt` (best validation score {best:.4f}), `log.csv`.

**Validation metrics (last validation).**

| metric | value |
|---|---|
{metrics}

**Intended use.** {card.get('intended_use', 'Research on transfer learning for bone-metastasis segmentation in whole-body MRI; not a medical device.')}

**Limits.** {card.get('limits', 'Trained on few scans; not validated for clinical use, other scanners, protocols or populations.')}
"""
    return atomic_write_text(ModelDir(out_dir).model_card, text)

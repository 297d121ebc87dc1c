"""Notebooks 02 (skeleton pretraining) and 03 (SSL pretraining) in the session's smoke series."""

from __future__ import annotations

import json

import pandas as pd

from sapkit.config import load_config
from sapkit.io.run_paths import RunDir


def _outputs(run_dir, name: str) -> list[dict]:
    nb = json.loads(RunDir(run_dir).notebook(name).read_text())
    return [o for c in nb["cells"] for o in c.get("outputs", [])]


def test_notebook_02_skeleton(smoke_series):
    assert not [o for o in _outputs(smoke_series, "02_skeleton_pretraining") if o.get("output_type") == "error"]
    folder = RunDir(smoke_series).skeleton
    assert {"model_final.pt", "model_best.pt", "log.csv", "MODEL_CARD.md"} <= {p.name for p in folder.path.iterdir()}
    log = pd.read_csv(folder.log_csv)
    assert log["epoch"].tolist() == list(range(load_config("smoke").skeleton.epochs + 1))
    assert log["loss"].iloc[1:].notna().all()


def test_notebook_03_ssl(smoke_series):
    outputs = _outputs(smoke_series, "03_ssl_pretraining")
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert RunDir(smoke_series).ssl.model().is_file()
    log = pd.read_csv(RunDir(smoke_series).ssl.log_csv)
    assert {"loss_rotation", "loss_contrastive", "loss_reconstruction", "val_loss"} <= set(log.columns)
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) >= 3  # pretext inputs, loss curves, reconstructions
    titles = [[a["text"] for a in f["data"]["application/vnd.plotly.v1+json"]["layout"].get("annotations", [])]
              for f in figures]
    assert ["total loss", "rotation loss", "contrastive loss", "reconstruction loss"] in titles  # readable rows
    assert ["corrupted input", "reconstruction", "target"] in titles

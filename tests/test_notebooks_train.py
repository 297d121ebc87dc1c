"""Notebooks 02 (skeleton pretraining) and 03 (SSL pretraining) run headless with the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sapkit.config import load_config
from sapkit.manifest import load_manifest
from sapkit.splits import save_splits, splits_from_manifest

REPO = Path(__file__).resolve().parents[1]
KERNEL = "sapkit"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """A run folder with the smoke synthetic cohort (sapkit.phantom) and splits.json."""
    run_dir = tmp_path_factory.mktemp("nb") / "run"
    config = load_config("smoke")
    try:
        from sapkit.phantom import generate_cohorts

        manifest = generate_cohorts(run_dir / "data", config.synth, progress=False)
    except ImportError:  # phantom not installed: the tiny cohort of test_train
        from test_train import write_train_cohort

        return write_train_cohort(run_dir)
    s = config.splits
    save_splits(splits_from_manifest(load_manifest(manifest), k=s.k, tuning_fold=s.tuning_fold, seed=s.seed,
                                     healthy_val_fraction=s.healthy_val_fraction), run_dir)
    return run_dir


def _run(name: str, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    import papermill as pm

    # one math thread per kernel: on a busy 2-core runner, oversubscribed OpenMP threads make the
    # tiny smoke network ~10x slower; unloaded, the cost of one thread is small
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    out = tmp_path / name
    pm.execute_notebook(str(REPO / "notebooks" / name), str(out), kernel_name=KERNEL, cwd=str(REPO),
                        parameters={"profile": "smoke", "run_dir": str(run_dir), "overrides": {}}, progress_bar=False)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    return nb


def test_notebook_02_skeleton(smoke_run, tmp_path, monkeypatch):
    _run("02_skeleton_pretraining.ipynb", smoke_run, tmp_path, monkeypatch)
    folder = smoke_run / "skeleton"
    assert {"model_final.pt", "model_best.pt", "log.csv", "MODEL_CARD.md"} <= {p.name for p in folder.iterdir()}
    log = pd.read_csv(folder / "log.csv")
    assert log["epoch"].tolist() == list(range(load_config("smoke").skeleton.epochs + 1))
    assert log["loss"].iloc[1:].notna().all()


def test_notebook_03_ssl(smoke_run, tmp_path, monkeypatch):
    nb = _run("03_ssl_pretraining.ipynb", smoke_run, tmp_path, monkeypatch)
    assert (smoke_run / "ssl" / "model_final.pt").is_file()
    log = pd.read_csv(smoke_run / "ssl" / "log.csv")
    assert {"loss_rotation", "loss_contrastive", "loss_reconstruction", "val_loss"} <= set(log.columns)
    images = [o for c in nb["cells"] for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(images) >= 3  # pretext inputs, loss curves, reconstructions

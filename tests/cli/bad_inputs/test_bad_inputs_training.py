"""A catalogue of malformed training/transfer/inference inputs: each raises one sapkit error naming
the file or parameter and the fix, writes no named output and leaves every input file byte-identical;
the CLI cases exit non-zero with the message and no traceback.

Each case is ``case(root) -> (callable, regex)``; ``root`` is an empty folder the case fills before
the call; digests of every file under ``root`` are taken right before the call and compared after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sapkit.config import ModelConfig, load_config
from sapkit.errors import SapkitError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
from test_tasks import make_case, write_train_cohort  # noqa: E402

UNET = ModelConfig(backbone="unet", channels=(4, 8, 16, 32))  # downsampling factor 8
SWIN = ModelConfig(backbone="swinunetr", feature_size=12)
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def _model(cfg=UNET, out=2):
    from sapkit.networks.factory import build_model

    return build_model(cfg, out, seed=0)


def _save_state(path: Path, state: dict, **extra) -> Path:
    torch.save({"state_dict": state, **extra}, path)
    return path


def _load(path, cfg=UNET, out=2):
    from sapkit.inference.predict import load_model

    return lambda: load_model(path, cfg, out_channels=out)


def _tang(feature_size: int = 12, drop: str | None = None) -> dict:
    from monai.networks.nets import SwinUNETR

    swin = SwinUNETR(in_channels=1, out_channels=2, feature_size=feature_size).swinViT
    state = {"module." + k.replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2."): v
             for k, v in swin.state_dict().items()}
    return {"state_dict": {k: v for k, v in state.items() if drop is None or drop not in k}}


def _transfer(path, cfg=SWIN, init="ssl"):
    from sapkit.networks.transfer import transfer_weights

    return lambda: transfer_weights(_model(cfg), path, init=init)


# ---------------------------------------------------------------- checkpoints given to predict
@case
def nan_checkpoint(root):
    state = _model().state_dict()
    state["head.conv.weight" if "head.conv.weight" in state else next(iter(state))] *= float("nan")
    return _load(_save_state(root / "nan.pt", state)), r"nan\.pt holds non-finite weights \(NaN/inf.*diverged training run"


@case
def inf_checkpoint(root):
    state = _model().state_dict()
    key = [k for k in state if k.endswith("weight")][-1]
    state[key] = torch.full_like(state[key], float("inf"))
    return _load(_save_state(root / "inf.pt", state)), r"inf\.pt holds non-finite weights .*" + key.replace(".", r"\.")


@case
def checkpoint_with_invalid_stored_model_config(root):
    path = _save_state(root / "m.pt", _model().state_dict(), config={"model": {"backbone": "resnet50"}})
    return _load(path), r"m\.pt stores a model configuration sapkit cannot build .*model\.backbone.*'resnet50'"


def _stored(root, name, **model):
    """A checkpoint whose stored ``config.model`` holds ``model`` (as an edited or foreign file would)."""
    return _load(_save_state(root / name, _model().state_dict(), config={"model": dict(model)}))


@case
def stored_channels_as_a_string(root):  # issue 23: TypeError in networks/factory.py
    return _stored(root, "s.pt", channels="abc"), \
        r"s\.pt stores a model configuration sapkit cannot build \(config key 'model\.channels'.*retrain or re-save"


@case
def stored_channels_with_a_word(root):
    return _stored(root, "w.pt", channels=[4, "x"]), r"w\.pt stores a model configuration sapkit cannot build .*model\.channels"


@case
def stored_channels_null(root):
    return _stored(root, "n.pt", channels=None), r"n\.pt stores a model configuration sapkit cannot build .*model\.channels"


@case
def stored_norm_as_a_number(root):
    return _stored(root, "norm.pt", norm_name=5), r"norm\.pt stores a model configuration sapkit cannot build .*model\.norm_name"


@case
def stored_in_channels_as_text(root):
    return _stored(root, "ic.pt", in_channels="2"), r"ic\.pt stores a model configuration sapkit cannot build .*model\.in_channels"


@case
def stored_negative_channels(root):
    return _stored(root, "neg.pt", channels=[4, -8]), r"neg\.pt stores a model configuration sapkit cannot build .*-8"


@case
def stored_swin_feature_size_as_text(root):
    return _stored(root, "fs.pt", backbone="swinunetr", feature_size="big"), \
        r"fs\.pt stores a model configuration sapkit cannot build .*model\.feature_size"


@case
def stored_model_section_not_a_mapping(root):
    path = _save_state(root / "list.pt", _model().state_dict(), config={"model": ["unet"]})
    return _load(path), r"list\.pt stores a model configuration sapkit cannot build .*mapping"


@case
def checkpoint_of_another_class_count(root):
    path = _save_state(root / "skeleton.pt", _model(out=10).state_dict())
    return _load(path), r"skeleton\.pt does not fit a unet with 2 outputs .*checkpoint's task"


@case
def checkpoint_of_another_architecture(root):
    path = _save_state(root / "wide.pt", _model(dataclasses.replace(UNET, channels=(8, 16, 32, 64))).state_dict())
    return _load(path), r"wide\.pt does not fit a unet with 2 outputs"


@case
def checkpoint_that_is_not_torch(root):
    (root / "weights.pt").write_text("not a checkpoint")
    return _load(root / "weights.pt"), r"weights\.pt: it is not a readable torch checkpoint"


# ---------------------------------------------------------------- network outputs and ROIs
@case
def nan_network_output(root):
    from sapkit.inference.sliding_window import predict_probabilities

    model = _model()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    image = np.random.default_rng(0).random((2, 16, 16, 16), dtype=np.float32)
    return (lambda: predict_probabilities(model, image, roi=(16, 16, 16), skip_background=False)), \
        r"network's output is not finite \(NaN/inf\) in 4096 of 4096 voxels.*lower learning rate"


@case
def swinunetr_roi_32(root):
    from sapkit.networks.factory import check_roi_fits

    return (lambda: check_roi_fits((32, 32, 32), _model(SWIN), what="lesion.roi")), \
        r"lesion\.roi \[32, 32, 32\] must be multiples of 32 of at least 64 .*swinunetr.*use e\.g\. \[64, 64, 64\]"


@case
def swinunetr_infer_roi_48(root):
    from sapkit.inference.sliding_window import predict_probabilities

    image = np.zeros((2, 64, 64, 64), np.float32)
    return (lambda: predict_probabilities(_model(SWIN), image, roi=(48, 64, 64), skip_background=False)), \
        r"infer\.roi \[48, 64, 64\] must be multiples of 32 of at least 64"


@case
def unet_roi_with_one_voxel_bottleneck(root):
    from sapkit.networks.factory import check_roi_fits

    return (lambda: check_roi_fits((8, 16, 16), _model(), what="skeleton.roi")), \
        r"skeleton\.roi \[8, 16, 16\] must be multiples of 8 of at least 16 .*unet.*use e\.g\. \[16, 16, 16\]"


# ---------------------------------------------------------------- pretrained weights (transfer)
@case
def tang_layout_of_another_feature_size(root):
    torch.save(_tang(24), root / "model_swinvit.pt")
    return _transfer(root / "model_swinvit.pt"), \
        r"model_swinvit\.pt: \d+ of the \d+ tensor\(s\) .*shape-mismatch.*feature_size"


@case
def tang_layout_with_missing_keys(root):
    torch.save(_tang(12, drop="layers3.0.blocks.1."), root / "model_swinvit.pt")
    return _transfer(root / "model_swinvit.pt"), \
        r"swinViT\.layers3\.0\.blocks\.1\.\S+ \(missing-in-source"


@case
def pretrained_of_another_backbone(root):
    torch.save(_model().state_dict(), root / "unet.pt")
    return _transfer(root / "unet.pt"), r"ssl transfer from .*unet\.pt loaded no tensor.*check the backbone"


@case
def transfer_with_scratch_init(root):
    torch.save(_tang(12), root / "model_swinvit.pt")
    return _transfer(root / "model_swinvit.pt", init="scratch"), r"transfer needs init 'sap' or 'ssl', got 'scratch'"


# ---------------------------------------------------------------- training set-up
@case
def nan_input_patch(root):
    from sapkit.training.engine import fit
    from sapkit.training.segmentation import dice_ce_step

    config = load_config("smoke", {"skeleton.epochs": 1})
    model = _model()
    image = np.ones((2, 16, 16, 16), np.float32)
    image[1, 0, 0, 0] = np.nan
    sampler = type("S", (), {"__len__": lambda s: 2,
                             "epoch_samples": lambda s, e: [(image, np.zeros((16, 16, 16), np.int64))] * 2})()
    return (lambda: fit(root / "out", config, task="skeleton", model=model,
                        groups=[{"name": "all", "params": list(model.parameters()), "lr": 1e-3}], sampler=sampler,
                        step=dice_ce_step(), validate=None, task_config=config.skeleton, augment_samples=False,
                        card={}, progress=False)), \
        r"skeleton training diverged at epoch 1, step 1: loss 'loss' is not finite; likely cause: the input patch"


@case
def validation_fraction_of_one(root):
    from sapkit.training.cross_validation import validation_subjects

    return (lambda: validation_subjects(["a", "b"], 1.0, seed=0)), r"lesion\.val_fraction must be in \[0, 1\), got 1\.0"


@case
def best_checkpoint_without_validation_patients(root):
    from sapkit.training.cross_validation import finetune

    write_train_cohort(root / "run")
    config = load_config("smoke", {"lesion.checkpoint": "best", "lesion.val_fraction": 0.0})
    return (lambda: finetune(root / "run", config, init="scratch", fold="0", progress=False)), \
        r"lesion\.checkpoint=best needs validation patients.*lesion\.val_fraction > 0.*lesion\.checkpoint=final"


@case
def ddp_rank_beyond_world_size(root):
    from sapkit.training.lesion_sampler import build_sampler

    cases = [make_case(1, lesions=True)]
    return (lambda: build_sampler(cases, load_config("smoke").lesion, rank=2, world_size=2)), r"rank"


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_catalogue_is_large_enough():
    assert len(CASES) >= 15, len(CASES)


@pytest.mark.parametrize("make", CASES, ids=lambda f: f.__name__)
def test_bad_training_input_raises_clear_error_and_leaves_inputs_untouched(tmp_path, make):
    call, message = make(tmp_path)
    before = _digests(tmp_path)
    with pytest.raises(SapkitError, match=message):
        call()
    assert _digests(tmp_path) == before  # nothing written, nothing changed


# ---------------------------------------------------------------- the CLI: exit 1, message, no traceback
BIN = Path(sys.executable).parent


def _sapkit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / "sapkit"), *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.skipif(not (BIN / "sapkit").exists(), reason="the sapkit console script is not installed")
def test_cli_diverging_training_exits_nonzero_without_weights(tmp_path):
    run_dir = write_train_cohort(tmp_path / "run")
    before = _digests(run_dir)
    res = _sapkit("train", "skeleton", "--profile", "smoke", "--run-dir", str(run_dir), "-p", "skeleton.epochs=1",
                  "-p", "skeleton.lr=1e30")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert re.search(r"skeleton training diverged at epoch 1, step \d+: .* is not finite; likely cause: .*"
                     r"a learning rate too high \(this step: encoder 5e\+29", res.stderr), res.stderr[-800:]  # warm-up: 1e30 / 2
    after = _digests(run_dir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if k.endswith(".pt")]  # no model_final/model_best/checkpoint_last


@pytest.mark.skipif(not (BIN / "sapkit").exists(), reason="the sapkit console script is not installed")
def test_cli_predict_refuses_a_nan_checkpoint(tmp_path):
    run_dir = write_train_cohort(tmp_path / "run")
    state = _model(load_config("smoke").model).state_dict()
    for v in state.values():
        if v.is_floating_point():
            v.fill_(float("nan"))
    _save_state(tmp_path / "nan.pt", state)
    before = _digests(tmp_path)
    res = _sapkit("predict", "--profile", "smoke", "--checkpoint", str(tmp_path / "nan.pt"),
                  "--manifest", str(run_dir / "data"), "--out", str(tmp_path / "pred"))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "holds non-finite weights" in res.stderr + res.stdout
    after = {k: v for k, v in _digests(tmp_path).items() if not Path(k).name.startswith(".sapkit.lock")}
    assert after == before  # at most the output folder's writer lock; no probability map or table

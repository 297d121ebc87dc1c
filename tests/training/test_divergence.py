"""sapkit.training.divergence: a diverging run stops at the first non-finite loss/gradient/weight and
never writes NaN weights; predict refuses NaN checkpoints and non-finite network outputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sapkit.config import load_config
from sapkit.errors import CheckpointError, SapkitError, TrainingError
from sapkit.inference.predict import load_model
from sapkit.inference.sliding_window import predict_probabilities
from sapkit.io.run_paths import RunDir
from sapkit.networks.factory import build_model
from sapkit.networks.finite import first_nonfinite
from sapkit.training.engine import fit
from sapkit.training.segmentation import dice_ce_step
from sapkit.training.skeleton_task import train_skeleton
from test_tasks import TRAIN

pytestmark = pytest.mark.usefixtures("one_math_thread")
CARD = {"summary": "test", "label_map": {0: "bg", 1: "fg"}, "data": "", "roi": (16, 16, 16), "training": ""}


class _Sampler:
    """4 patches per epoch; from epoch ``bad_epoch`` on, the third patch holds a NaN voxel."""

    def __init__(self, bad_epoch: int) -> None:
        self.bad_epoch = bad_epoch

    def __len__(self) -> int:
        return 4

    def epoch_samples(self, epoch: int):
        rng = np.random.default_rng(epoch)
        out = []
        for i in range(4):
            image = rng.random((2, 16, 16, 16), dtype=np.float32)
            if epoch >= self.bad_epoch and i == 2:
                image[0, 3, 3, 3] = np.nan
            out.append((image, (image[0] > 0.5).astype(np.int64)))
        return out


def _weights_finite(path) -> bool:
    return first_nonfinite(torch.load(path, weights_only=True)["state_dict"].items()) is None


def test_nan_input_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = load_config("smoke", {"skeleton.epochs": 3, "skeleton.batch_size": 2})
    model = build_model(config.model, 2, seed=0)
    md = RunDir(tmp_path).skeleton
    with pytest.raises(TrainingError, match=r"skeleton training diverged at epoch 2, step 2: loss 'loss' is not "
                                            r"finite; likely cause: the input patch itself holds NaN") as err:
        fit(md.path, config, task="skeleton", model=model,
            groups=[{"name": "all", "params": list(model.parameters()), "lr": 1e-3}], sampler=_Sampler(bad_epoch=1),
            step=dice_ce_step(), validate=lambda m, d: {"score": 0.5}, task_config=config.skeleton,
            augment_samples=False, card=CARD, progress=False)
    assert f"the last good checkpoint {md.checkpoint_last} was kept" in str(err.value)
    assert sorted(p.name for p in md.path.iterdir()) == ["checkpoint_last.pt", "log.csv", "model_best.pt"]
    assert torch.load(md.checkpoint_last, weights_only=True)["epoch"] == 1  # written after epoch 1, not 2
    assert _weights_finite(md.checkpoint_last) and _weights_finite(md.model("best"))


def test_infinite_learning_rate_writes_no_weights(tmp_path):
    """``lr=inf`` once trained 'successfully' into NaN weights; now the first update is caught."""
    smoke = load_config("smoke", {"skeleton.epochs": 2})
    config = dataclasses.replace(smoke, skeleton=dataclasses.replace(smoke.skeleton, lr=float("inf")))
    with pytest.raises(TrainingError, match=r"skeleton training diverged at epoch 1, step 1: the weight \S+ after "
                                            r"the optimiser step is not finite; likely cause: a learning rate too "
                                            r"high \(this step: encoder inf, decoder inf") as err:
        train_skeleton(tmp_path, config, train_cases=TRAIN, val_cases=None, progress=False)
    assert "no checkpoint of this run was written" in str(err.value)
    assert not list(RunDir(tmp_path).skeleton.path.glob("*.pt"))


def test_predict_refuses_a_nan_checkpoint_and_nan_outputs(tmp_path):
    config = load_config("smoke")
    model = build_model(config.model, 2, seed=0)
    state = model.state_dict()
    name = next(k for k in state if k.endswith("weight"))
    state[name] = torch.full_like(state[name], float("nan"))
    torch.save({"state_dict": state}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan\.pt holds non-finite weights \(NaN/inf, e\.g\. " + name):
        load_model(tmp_path / "nan.pt", config.model)
    model.load_state_dict(state)  # a module with NaN weights given directly: the output check catches it
    image = np.random.default_rng(0).random((2, 32, 32, 32), dtype=np.float32)
    with pytest.raises(SapkitError, match=r"network's output is not finite \(NaN/inf\) in 32768 of 32768 voxels"):
        predict_probabilities(model, image, roi=(32, 32, 32), skip_background=False, device="cpu")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_first_nonfinite_finds_nan_and_both_infinities_and_skips_what_cannot_be(bad):
    t = torch.randn(1000)
    t[517] = bad
    named = [("ones", torch.ones(3)), ("empty", torch.empty(0)), ("ints", torch.arange(3)), ("grad", None), ("t", t)]
    assert first_nonfinite(named) == "t" and first_nonfinite([("half", t.half())]) == "half"
    assert first_nonfinite([("huge", torch.full((3,), 3e38)), ("ints", torch.arange(3))]) is None

"""sapkit.training.engine: schedule, seeds, the resume configuration check, and results read back from a task folder."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sapkit.config import config_to_dict, load_config
from sapkit.training.engine import lr_factor, read_train_result, seed_from
from sapkit.training.resume import config_differences
from sapkit.errors import ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.training.skeleton_task import train_skeleton
from test_tasks import TRAIN, VAL


pytestmark = pytest.mark.usefixtures("one_math_thread")


@pytest.fixture(scope="module")
def smoke():
    return load_config("smoke")


def test_lr_factor_schedule():
    f = [lr_factor(e, warmup_epochs=10, epochs=400) for e in range(400)]
    assert f[0] == pytest.approx(1 / 11) and f[9] == pytest.approx(10 / 11) and f[10] == 1.0
    assert all(a < b for a, b in zip(f[:10], f[1:11])) and all(a > b for a, b in zip(f[10:], f[11:]))
    assert f[205] == pytest.approx(0.5) and 0 < f[-1] < 1e-4
    assert lr_factor(0, warmup_epochs=0, epochs=1) == 1.0  # no warm-up: full rate at once


def test_seed_from_is_a_pure_function_of_its_parts():
    assert seed_from(42, 202, 3) == seed_from(42, 202, 3)
    assert len({seed_from(42, 202, e) for e in range(50)}) == 50
    assert seed_from(42, 202, 3) != seed_from(42, 203, 3) and 0 <= seed_from(1) < 2**62


def test_config_differences_names_keys_and_values(smoke):
    stored = config_to_dict(smoke)
    same = config_differences(stored, smoke, task="skeleton")
    assert same == []
    changed = load_config("smoke", {"seed": 7, "skeleton.lr": 0.5, "model.channels": [4, 8, 16, 32],
                                    "augment.flip_prob": 0.0, "preprocess.clip_percentiles": [0.5, 99.5]})
    assert config_differences(stored, changed, task="skeleton") == [
        "augment.flip_prob (checkpoint 0.5, now 0.0)",
        "model.channels (checkpoint [8, 16, 32, 64], now [4, 8, 16, 32])",
        "preprocess.clip_percentiles (checkpoint [1.0, 99.0], now [0.5, 99.5])",
        "seed (checkpoint 42, now 7)",
        "skeleton.lr (checkpoint 0.003, now 0.5)",
    ]
    # another task's section, and sections not listed, are not compared
    assert config_differences(stored, changed, task="ssl", sections=()) == ["seed (checkpoint 42, now 7)"]


def test_config_differences_allows_more_epochs_and_fold_bookkeeping(smoke):
    stored = config_to_dict(smoke)
    more = load_config("smoke", {"skeleton.epochs": 50, "lesion.epochs": 50, "lesion.folds": ["0"],
                                 "lesion.inits": ["sap"], "lesion.checkpoint": "best", "infer.overlap": 0.1,
                                 "eval.tolerance_mm": 5.0, "device": "cpu"})
    assert config_differences(stored, more, task="skeleton") == []
    assert config_differences(stored, more, task="lesion") == []
    # lesion bookkeeping keys are free for the lesion task only; label_fraction is not free
    assert config_differences(stored, load_config("smoke", {"lesion.label_fraction": 0.5}), task="lesion") == [
        "lesion.label_fraction (checkpoint 1.0, now 0.5)"]


def test_config_differences_skips_keys_missing_on_one_side(smoke):
    stored = config_to_dict(smoke)
    del stored["model"]["use_checkpoint"], stored["augment"]  # an older schema
    assert config_differences(stored, smoke, task="skeleton") == []
    assert config_differences({}, smoke, task="skeleton") == []


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, smoke):
    """A skeleton run stopped after 1 of 3 epochs (validated: row 0 and epoch 1 carry val_*)."""
    run_dir = tmp_path_factory.mktemp("engine")
    result = train_skeleton(run_dir, load_config("smoke", {"skeleton.val_every": 1}), train_cases=TRAIN,
                            val_cases=VAL, progress=False, stop_after=1)
    return run_dir, result


@pytest.mark.parametrize("overrides, named", [
    ({"seed": 3}, r"seed \(checkpoint 42, now 3\)"),
    ({"skeleton.lr": 1e-4}, r"skeleton\.lr \(checkpoint 0\.003, now 0\.0001\)"),
    ({"model.norm_name": "batch"}, r"model\.norm_name \(checkpoint 'instance', now 'batch'\)"),
])
def test_resume_refuses_a_changed_config_and_leaves_the_run_alone(one_epoch, overrides, named):
    run_dir, _ = one_epoch
    folder = RunDir(run_dir).skeleton.path
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    config = load_config("smoke", {"skeleton.val_every": 1, **overrides})
    with pytest.raises(ConfigError, match=r"cannot resume from .*checkpoint_last\.pt.*" + named +
                       r".*resume with the same profile/overrides, or start a new run_dir"):
        train_skeleton(run_dir, config, train_cases=TRAIN, val_cases=VAL, progress=False, resume=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_read_train_result_matches_fit(one_epoch):
    run_dir, result = one_epoch
    back = read_train_result(RunDir(run_dir).skeleton.path)
    assert (back.epochs_done, back.finished) == (result.epochs_done, result.finished) == (1, False)
    assert back.best_score == pytest.approx(result.best_score) and back.transfer is None
    pd.testing.assert_frame_equal(back.log, result.log, check_dtype=False)
    empty = read_train_result(run_dir / "nothing")
    assert (empty.epochs_done, empty.finished, len(empty.log)) == (0, False, 0) and empty.best_score != empty.best_score


def test_resume_may_extend_epochs(tmp_path, smoke):
    """The one legitimate change: more epochs. The run continues from epoch 1 to the new end."""
    train_skeleton(tmp_path, smoke, train_cases=TRAIN, val_cases=None, progress=False, stop_after=1)
    longer = load_config("smoke", {"skeleton.epochs": smoke.skeleton.epochs + 1})
    res = train_skeleton(tmp_path, longer, train_cases=TRAIN, val_cases=None, progress=False, resume=True)
    assert res.finished and res.epochs_done == smoke.skeleton.epochs + 1
    assert res.log["epoch"].tolist() == list(range(1, smoke.skeleton.epochs + 2))
    assert torch.load(res.final_path, weights_only=True)["config"]["skeleton"]["epochs"] == smoke.skeleton.epochs + 1

import json

import numpy as np
import pytest

from sapkit.errors import ConfigError, SapkitError
from sapkit.data.manifest import load_manifest
from sapkit.data.splits import (fold_subjects, load_splits, make_splits, save_splits, splits_from_manifest, test_folds,
                           training_subjects)


def _cohort(n, seed):
    rng = np.random.default_rng(seed)
    counts = np.minimum(rng.pareto(1.2, n).astype(int) + 1, 60)  # heavy-tailed, like the paper
    return {f"pat{i:03d}": int(c) for i, c in enumerate(counts)}


@pytest.mark.parametrize("n, k, seed", [(40, 7, 42), (33, 7, 1), (27, 3, 42), (10, 4, 7), (7, 7, 3)])
def test_fold_properties(n, k, seed):
    counts = _cohort(n, seed)
    healthy = [f"vol{i}" for i in range(24)]
    s = make_splits(counts, healthy, k=k, tuning_fold=k - 1, seed=seed)
    members = [subj for fold in s["folds"].values() for subj in fold]
    assert sorted(members) == sorted(counts)  # every patient in exactly one fold
    sizes = [len(v) for v in s["folds"].values()]
    assert max(sizes) - min(sizes) <= 1
    fold_of = {subj: f for f, fold in s["folds"].items() for subj in fold}
    order = sorted(counts, key=lambda x: (counts[x], x))
    for start in range(0, n, k):
        block = [fold_of[x] for x in order[start:start + k]]
        assert len(block) == len(set(block))  # ≤ 1 patient of each block per fold
    assert not set(s["healthy"]["train"]) & set(s["healthy"]["val"])
    assert sorted(s["healthy"]["train"] + s["healthy"]["val"]) == sorted(healthy)
    assert len(s["healthy"]["val"]) == 3  # round(0.12 * 24)
    assert make_splits(counts, healthy, k=k, tuning_fold=k - 1, seed=seed) == s  # same seed, same splits


def test_different_seeds_give_different_folds():
    counts = _cohort(40, 0)
    assert make_splits(counts, k=7, seed=1)["folds"] != make_splits(counts, k=7, seed=2)["folds"]


def test_training_sets_follow_the_protocol():
    s = make_splits(_cohort(21, 0), k=7, tuning_fold=6)
    assert test_folds(s) == ["0", "1", "2", "3", "4", "5"]
    for f in test_folds(s):
        train = set(training_subjects(s, f))
        assert not train & set(fold_subjects(s, f))
        assert set(s["folds"]["6"]) <= train  # the tuning fold trains the test-fold models
    tune_train = set(training_subjects(s, "tune"))
    assert tune_train == {x for f in test_folds(s) for x in s["folds"][f]}
    with pytest.raises(SapkitError, match="fold '9' is not in splits.json"):
        fold_subjects(s, 9)


def test_invalid_arguments():
    with pytest.raises(ConfigError, match="tuning_fold must be in"):
        make_splits(_cohort(10, 0), k=3, tuning_fold=3)
    with pytest.raises(SapkitError, match="cannot fill 7 folds"):
        make_splits(_cohort(5, 0), k=7)


def test_save_load_and_tampering(tmp_path, tiny_cohort):
    s = splits_from_manifest(load_manifest(tiny_cohort), k=2, tuning_fold=1)
    assert s["lesion_counts"] == {"p02": 1, "p03": 2, "p04": 3, "p05": 4}
    save_splits(s, tmp_path)
    assert load_splits(tmp_path) == s
    bad = dict(s)
    bad["folds"] = {"0": ["p02"], "1": ["p02", "p03"]}
    (tmp_path / "splits.json").write_text(json.dumps(bad))
    with pytest.raises(SapkitError, match="subject p02 is in folds 0 and 1"):
        load_splits(tmp_path)
    with pytest.raises(SapkitError, match="run notebook 00"):
        load_splits(tmp_path / "nowhere")

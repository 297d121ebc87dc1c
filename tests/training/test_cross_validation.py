import pytest

from sapkit.errors import ConfigError
from sapkit.training.cross_validation import label_subset, resolve_folds
from sapkit.data.splits import make_splits

SPLITS = make_splits({f"p{i}": i % 4 for i in range(9)}, k=3, tuning_fold=2)


def test_all_folds_means_every_test_fold_and_tune():
    assert resolve_folds(SPLITS, ["all"]) == ["0", "1", "tune"]
    assert resolve_folds(SPLITS, [1]) == ["1"]
    with pytest.raises(ConfigError, match="fold 2 is the tuning fold"):
        resolve_folds(SPLITS, [2])


@pytest.mark.parametrize("fraction, n", [(1.0, 6), (0.5, 3), (0.34, 3), (0.01, 1)])
def test_label_fraction_subset_is_seeded_nested_size(fraction, n):
    subjects = [f"p{i}" for i in range(6)]
    subset = label_subset(subjects, fraction, seed=42)
    assert len(subset) == n and set(subset) <= set(subjects)
    assert subset == label_subset(list(reversed(subjects)), fraction, seed=42)  # order-free, seeded
    with pytest.raises(ConfigError, match=r"label_fraction must be in \(0, 1\]"):
        label_subset(subjects, 0.0, seed=1)


import pytest

from sapkit.errors import ConfigError
from sapkit.data.splits import make_splits, resolve_folds
from sapkit.training.cross_validation import label_subset

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



def test_validation_subjects_are_seeded_disjoint_and_leave_training_patients():
    from sapkit.training.cross_validation import validation_subjects

    subjects = [f"p{i}" for i in range(33)]  # the paper's test-fold model: 33 training patients
    val = validation_subjects(subjects, 0.125, seed=42)
    assert len(val) == 4 and set(val) < set(subjects)
    assert val == validation_subjects(list(reversed(subjects)), 0.125, seed=42)
    assert val != validation_subjects(subjects, 0.125, seed=43)
    assert validation_subjects(["a", "b"], 0.125, seed=0) in (["a"], ["b"])  # at least 1, at least 1 left
    assert validation_subjects(["a"], 0.125, seed=0) == [] and validation_subjects(subjects, 0.0, seed=0) == []
    with pytest.raises(ConfigError, match="val_fraction"):
        validation_subjects(subjects, 1.0, seed=0)


@pytest.mark.parametrize("fold", ["0", "tune"])
@pytest.mark.parametrize("preloaded", [False, True])
def test_lesion_validation_never_sees_the_predicted_fold(tmp_path, monkeypatch, fold, preloaded):
    """model_best.pt is chosen on validation patients carved from the training patients; the
    predicted (test or tuning) fold reaches neither training nor validation, and is read only after
    training."""
    import sapkit.data.cases as cases_module
    import sapkit.inference.predict as predict_module
    import sapkit.training.cross_validation as cross_validation
    import sapkit.training.lesion_task as lesion_task
    from sapkit.data.manifest import load_manifest
    from sapkit.io.run_paths import RunDir
    from sapkit.config import load_config
    from sapkit.data.splits import fold_subjects, load_splits, training_subjects
    from sapkit.training.cross_validation import finetune
    from test_tasks import write_train_cohort

    run_dir = write_train_cohort(tmp_path / "run", n_patients=6)
    splits = load_splits(run_dir)
    config = load_config("smoke", overrides={"lesion.checkpoint": "best"})
    events: list[tuple[str, set]] = []
    real_load = cases_module.load_cases

    def load_cases(manifest, *, subjects=None, **kw):
        loaded = real_load(manifest, subjects=subjects, **kw)
        events.append(("load", {c.subject_id for c in loaded}))
        return loaded

    def train_lesion(run_dir, config, *, train_cases, val_cases, sampler, **kw):
        events.append(("train", {c.subject_id for c in train_cases}))
        events.append(("validate", {c.subject_id for c in val_cases}))

    def build_sampler(cases, lesion_config, **kw):
        events.append(("sampler", {c.subject_id for c in cases}))
        return object()

    def predict_manifest(checkpoint, manifest, out, *, cases, **kw):
        events.append(("predict", {c.subject_id for c in cases.values()}))
        assert checkpoint.name == "model_best.pt"

    monkeypatch.setattr(cross_validation, "load_cases", load_cases)  # imported by name at the module's top
    monkeypatch.setattr(lesion_task, "train_lesion", train_lesion)
    monkeypatch.setattr(predict_module, "predict_manifest", predict_manifest)
    monkeypatch.setattr(cross_validation, "build_sampler", build_sampler)
    preload = real_load(load_manifest(RunDir(run_dir).data), cohort="patient") if preloaded else None
    finetune(run_dir, config, init="scratch", fold=fold, progress=False, cases=preload)

    held = set(fold_subjects(splits, fold))
    seen = dict((k, v) for k, v in events if k != "load")
    val = seen["validate"]
    assert len(val) == 1 and not val & held  # 12.5 % of 4 training patients, at least 1
    assert not seen["train"] & held and not seen["train"] & val and seen["sampler"] == seen["train"]
    assert seen["train"] | val == set(training_subjects(splits, fold))
    assert seen["predict"] == held
    trained_at = [k for k, _ in events].index("train")
    assert not any(ids & held for k, ids in events[:trained_at] if k == "load")  # the predicted fold: read after training

"""sapkit.training.skeleton_task, ssl_task, lesion_task: the three tasks (learning, exact resume, artefacts,
transfer), the skeleton model's per-scan Dice, `sapkit train lesion` and cross_validation.finetune_all."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from sapkit.config import load_config
from sapkit.errors import CheckpointError, ConfigError, SapkitError
from sapkit.inference.sliding_window import body_mask
from sapkit.io.run_paths import RunDir
from sapkit.training.lesion_task import train_lesion
from sapkit.training.skeleton_task import predict_skeleton, skeleton_dice_by_scan, train_skeleton
from sapkit.training.ssl_task import train_ssl


def make_case(seed: int, *, shape=(40, 40, 56), lesions: bool = False) -> SimpleNamespace:
    """A tiny 'body' with a spine column (1), two femurs (4) and a pelvis slab (5); optional lesions."""
    rng = np.random.default_rng(seed)
    skel = np.zeros(shape, np.int16)
    image = np.zeros((2, *shape), np.float32)
    image[:, 4:-4, 4:-4, 2:-2] = 0.3
    cx, cy = shape[0] // 2 + int(rng.integers(-2, 3)), shape[1] // 2 + int(rng.integers(-2, 3))
    skel[cx - 3:cx + 3, cy - 3:cy + 3, 20:50] = 1
    skel[cx - 12:cx - 6, cy - 4:cy + 4, 4:18] = 4
    skel[cx + 6:cx + 12, cy - 4:cy + 4, 4:18] = 4
    skel[cx - 10:cx + 10, cy - 6:cy + 6, 18:22] = 5
    image[0][skel > 0], image[1][skel > 0] = 0.9, 0.6
    lesion = None
    if lesions:
        lesion = np.zeros(shape, np.uint8)
        lesion[cx - 2:cx + 1, cy - 2:cy + 1, 30:33] = 1
        lesion[cx + 7:cx + 9, cy - 1:cy + 1, 8:10] = 1
        image[0][lesion > 0], image[1][lesion > 0] = 0.2, 1.0
    image = np.clip(image + rng.normal(0, 0.05, image.shape).astype(np.float32), 0, 1)
    return SimpleNamespace(scan_id=f"s{seed}", subject_id=f"s{seed}", cohort="patient" if lesions else "healthy",
                           image=image, skeleton=skel, lesion=lesion)


TRAIN, VAL = [make_case(0), make_case(1)], [make_case(10)]


pytestmark = pytest.mark.usefixtures("one_math_thread")


@pytest.fixture(scope="module")
def smoke():
    return load_config("smoke")


@pytest.fixture(scope="module")
def skeleton_run(tmp_path_factory, smoke):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, train_skeleton(run_dir, smoke, train_cases=TRAIN, val_cases=VAL, progress=False)


def test_skeleton_smoke_learns(skeleton_run):
    """Acceptance 5: validation foreground Dice after the smoke training beats the untrained network by >= 0.1."""
    run_dir, result = skeleton_run
    log = result.log
    untrained, trained = log.loc[log["epoch"] == 0, "val_dice_foreground"].item(), log["val_dice_foreground"].iloc[-1]
    assert trained - untrained >= 0.1, (untrained, trained)
    assert result.finished and result.epochs_done == 3 and len(log) == 4


def test_artefacts(skeleton_run):
    run_dir, result = skeleton_run
    out = RunDir(run_dir).skeleton
    assert sorted(p.name for p in out.path.iterdir()) == ["MODEL_CARD.md", "log.csv", "model_best.pt", "model_final.pt"]
    log = pd.read_csv(out.log_csv)
    for col in ("epoch", "loss", "lr_encoder", "lr_decoder", "val_dice_mean", "val_dice_foreground",
                "val_dice_cervical_spine", "seconds"):
        assert col in log.columns
    assert log["lr_encoder"].iloc[1:].tolist() == pytest.approx([1.5e-3, 3e-3, 1.5e-3])  # warm-up 1, cosine over 3
    card = out.model_card.read_text()
    assert "0 = T1-weighted, 1 = DWI b = 1000" in card and "9: sternum" in card
    ck = torch.load(out.model(), weights_only=True)
    assert ck["epoch"] == 3 and ck["extra"]["task"] == "skeleton" and ck["config"]["profile"] == "smoke"
    assert isinstance(ck["rng"]["torch"], torch.Tensor)


def test_skeleton_dice_by_scan_scores_the_body_skipping_prediction(skeleton_run, smoke):
    from sapkit.inference.predict import load_model
    from sapkit.label_maps import SKELETON_CLASSES
    from sapkit.training.segmentation import per_class_dice_table

    _, result = skeleton_run
    model = load_model(result.final_path, smoke.model, out_channels=smoke.skeleton.num_classes)
    table = skeleton_dice_by_scan(model, VAL + TRAIN[:1], smoke)
    assert table["scan_id"].tolist() == ["s10"] * 10 + ["s0"] * 10
    assert table["region"].tolist()[:10] == [SKELETON_CLASSES[c] for c in range(1, 10)] + ["whole skeleton"]
    labels = predict_skeleton(model, VAL[0].image, smoke)
    assert labels.shape == VAL[0].skeleton.shape and labels.dtype == np.int16
    expected = per_class_dice_table(VAL[0].skeleton, labels, class_names=dict(SKELETON_CLASSES), scan_id="s10")
    pd.testing.assert_frame_equal(table.iloc[:10].reset_index(drop=True), expected)
    assert table.loc[table["region"] == "whole skeleton", "dice"].gt(0.3).all()  # it learned where bone is
    outside = ~body_mask(VAL[0].image)
    assert not labels[outside].any()  # windows outside the body are skipped: background there
    unlabelled = make_case(5)
    unlabelled.skeleton = None
    with pytest.raises(SapkitError, match=r"scans \['s5'\] have no skeleton label map"):
        skeleton_dice_by_scan(model, [unlabelled], smoke)


def test_resume_is_bit_identical(tmp_path, skeleton_run, smoke):
    """Acceptance 3: stop after epoch 1, resume, end with the same weights as the uninterrupted run."""
    _, full = skeleton_run
    # validation does not touch the training RNG streams: skip it here to save time
    part = train_skeleton(tmp_path, smoke, train_cases=TRAIN, val_cases=None, progress=False, stop_after=1)
    skeleton = RunDir(tmp_path).skeleton
    assert not part.finished and skeleton.checkpoint_last.is_file()
    assert not skeleton.model().exists()
    resumed = train_skeleton(tmp_path, smoke, train_cases=TRAIN, val_cases=None, progress=False, resume=True)
    a = torch.load(full.final_path, weights_only=True)["state_dict"]
    b = torch.load(resumed.final_path, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.log["loss"].tolist() == full.log["loss"].iloc[1:].tolist()


def test_resume_refuses_unsafe_checkpoint(tmp_path, smoke):
    from conftest import write_evil_checkpoint

    skeleton = RunDir(tmp_path).skeleton
    skeleton.path.mkdir()
    write_evil_checkpoint(skeleton.checkpoint_last, {})
    with pytest.raises(CheckpointError, match="checkpoint_last.pt"):
        train_skeleton(tmp_path, smoke, train_cases=TRAIN, val_cases=VAL, progress=False, resume=True)
    assert not (skeleton.path / "PWNED").exists()


def test_ssl_then_lesion_transfers(tmp_path, skeleton_run, smoke):
    from sapkit.training.lesion_sampler import build_sampler

    run_dir, _ = skeleton_run
    res = train_ssl(run_dir, smoke, train_cases=TRAIN, val_cases=VAL[:1], progress=False)
    assert res.finished and {"loss_rotation", "loss_contrastive", "loss_reconstruction"} <= set(res.log.columns)
    patients = [make_case(20 + i, shape=(40, 40, 104), lesions=True) for i in range(2)]  # room for negatives
    sampler = build_sampler(patients, smoke.lesion, seed=smoke.seed)
    one_epoch = load_config("smoke", {"lesion.epochs": 1, "lesion.warmup_epochs": 0})
    for init in ("sap", "ssl"):
        out = train_lesion(run_dir, one_epoch, init=init, fold=0, train_cases=patients,
                           val_cases=patients[:1] if init == "sap" else None, sampler=sampler, progress=False)
        folder = RunDir(run_dir).lesion(init, 0)
        assert folder.model().is_file() and folder.transfer_csv.is_file()
        counts = out.transfer["status"].value_counts()
        assert counts["loaded"] > 0 and "shape-mismatch" not in counts and "missing-in-source" not in counts
        assert out.log["lr_encoder"].iloc[-1] == pytest.approx(smoke.lesion.lr_encoder_sap if init == "sap"
                                                              else smoke.lesion.lr_encoder_ssl)
    zero = load_config("smoke", {"lesion.epochs": 1, "lesion.warmup_epochs": 0, "lesion.head_init": "zero"})
    out = train_lesion(run_dir, zero, init="sap", fold=1, train_cases=patients, val_cases=None, sampler=sampler,
                       progress=False)
    card = (RunDir(run_dir).lesion("sap", 1).path / "MODEL_CARD.md").read_text()
    assert "Output head set to zero" in card
    state = torch.load(RunDir(run_dir).lesion("sap", 1).model(), weights_only=True)["state_dict"]
    assert any(torch.count_nonzero(v) for k, v in state.items() if k.startswith("out."))  # it trained off zero
    bad = train_lesion  # an SSL file cannot stand in for a skeleton file: the decoder is random there
    with pytest.raises(CheckpointError, match="needs pretrained weights"):
        bad(tmp_path, smoke, init="sap", fold=1, train_cases=patients, val_cases=None, sampler=sampler, progress=False)


def write_train_cohort(root: Path, *, n_healthy: int = 3, n_patients: int = 3) -> Path:
    """Write :func:`make_case` volumes as NIfTI + manifest into ``root/data`` and splits.json into ``root``.

    Healthy subjects 'h0..' (one scan each), patients 'p0..' with two lesions each; k = 3 folds,
    one healthy subject for validation. Returns ``root`` (a run folder).
    """
    import nibabel as nib

    from sapkit.data.manifest import load_manifest, write_manifest
    from sapkit.data.splits import save_splits, splits_from_manifest

    data = RunDir(root).data
    data.mkdir(parents=True, exist_ok=True)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    rows = []

    def save(name, array):
        img = nib.Nifti1Image(array, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        nib.save(img, str(data / name))
        return name

    for i in range(n_healthy + n_patients):
        healthy = i < n_healthy
        sid = f"h{i}" if healthy else f"p{i - n_healthy}"
        case = make_case(100 + i, shape=(40, 40, 56) if healthy else (40, 40, 104), lesions=not healthy)
        rows.append({"scan_id": f"{sid}_s0", "subject_id": sid, "site": "site0", "cohort": "healthy" if healthy else "patient",
                     "t1": save(f"{sid}_t1.nii.gz", case.image[0] * 1000), "b1000": save(f"{sid}_b1000.nii.gz", case.image[1] * 500),
                     "skeleton_label": save(f"{sid}_skeleton.nii.gz", case.skeleton) if healthy else "",
                     "lesion_label": "" if healthy else save(f"{sid}_lesion.nii.gz", case.lesion)})
    manifest = write_manifest(data, pd.DataFrame(rows), name="train-test", description="sapkit.training task test cohort")
    splits = splits_from_manifest(load_manifest(manifest), k=3, tuning_fold=2, seed=0, healthy_val_fraction=0.34)
    save_splits(splits, root)
    return root


def test_cli_lesion_uses_finetune_label_fraction_and_predicts(tmp_path, capsys):
    """`sapkit train lesion` is finetune(): lesion.label_fraction subsets the training patients, and
    --predict writes the held-out fold's probability maps."""
    from sapkit.cli import main
    from sapkit.data.splits import fold_subjects, load_splits, training_subjects

    run_dir = write_train_cohort(tmp_path / "run")
    splits = load_splits(run_dir)
    assert len(training_subjects(splits, "0")) == 2
    args = ["train", "lesion", "--profile", "smoke", "--run-dir", str(run_dir), "--init", "scratch", "--fold", "0",
            "-p", "lesion.label_fraction=0.5", "-p", "lesion.roi=[16,16,16]", "-p", "device=cpu"]
    assert main(args + ["--predict"]) == 0
    out = capsys.readouterr().out
    assert "lesion: 1 epochs done" in out and "model_final.pt" in out and "probability maps in" in out
    rd = RunDir(run_dir)
    card = rd.lesion("scratch", 0).model_card.read_text()
    assert "1 training patient scans" in card  # 2 training patients: 1 set aside for validation, ceil(0.5 x 1) trains
    expected = {rd.probability_map("scratch", f"{s}_s0") for s in fold_subjects(splits, "0")}
    assert expected and expected <= set(rd.predictions("scratch").iterdir())


def test_finetune_all_trains_every_init_and_fold_and_tabulates(tmp_path):
    from sapkit.training.cross_validation import finetune_all, folds_table

    run_dir = write_train_cohort(tmp_path / "run")
    config = load_config("smoke", {"lesion.inits": ["scratch"], "lesion.folds": ["0", "tune"],
                                   "lesion.roi": [16, 16, 16], "device": "cpu"})
    results = finetune_all(run_dir, config, progress=False)
    rd = RunDir(run_dir)
    assert [(r.init, r.fold) for r in results] == [("scratch", "0"), ("scratch", "tune")]
    assert all(rd.lesion("scratch", r.fold).model().is_file() and r.model_dir == rd.lesion("scratch", r.fold).path
               for r in results)
    assert all(p.is_file() and p.parent == rd.predictions("scratch") for r in results for p in r.predictions)
    table = folds_table(results)
    assert table.columns.tolist() == ["init", "fold", "status", "training patients", "predicted scans", "folder"]
    assert table["fold"].tolist() == ["0", "tune"] and table["predicted scans"].tolist() == [len(r.predictions)
                                                                                            for r in results]
    assert table["status"].tolist() == ["trained", "trained"]

    # resume: finished models are reused, not retrained; a missing map is predicted again, nothing else rewritten
    files = {p: p.stat().st_mtime_ns for r in results for p in (rd.lesion("scratch", r.fold).model(), *r.predictions)}
    lost = results[1].predictions[0]
    lost.unlink()
    again = finetune_all(run_dir, config, resume=True, progress=False)
    assert [r.status for r in again] == ["reused", "reused"]
    assert lost.is_file() and [r.predictions for r in again] == [r.predictions for r in results]
    assert {p: t for p, t in files.items() if p != lost} == {p: p.stat().st_mtime_ns for p in files if p != lost}
    # a finished model of another recipe is refused, naming the key, before anything is trained
    with pytest.raises(ConfigError, match="lesion.lr_scratch"):
        finetune_all(run_dir, load_config("smoke", {**{"lesion.inits": ["scratch"], "lesion.folds": ["0"],
                                                       "lesion.roi": [16, 16, 16], "device": "cpu"},
                                                    "lesion.lr_scratch": 7.5e-4}), resume=True, progress=False)
    # more epochs on resume continue the finished model (epochs is the one key that may change)
    more = load_config("smoke", {"lesion.inits": ["scratch"], "lesion.folds": ["0"], "lesion.roi": [16, 16, 16],
                                 "device": "cpu", "lesion.epochs": config.lesion.epochs + 1})
    assert [r.status for r in finetune_all(run_dir, more, resume=True, progress=False)] == ["resumed"]


def test_finetune_all_checks_pretrained_before_training(tmp_path):
    from sapkit.training.cross_validation import finetune_all

    run_dir = tmp_path / "not_read"
    scratch = load_config("smoke", {"lesion.inits": ["scratch"]})
    with pytest.raises(ConfigError, match="has no init that transfers weights"):
        finetune_all(run_dir, scratch, pretrained=tmp_path / "x.pt")
    both = load_config("smoke", {"lesion.inits": ["scratch", "sap"]})
    with pytest.raises(ConfigError, match=r"init\(s\) \['ssl'\] that are not trained here"):
        finetune_all(run_dir, both, pretrained={"ssl": tmp_path / "x.pt"})
    with pytest.raises(ConfigError, match="pretrained checkpoint for init 'sap' not found: .*x.pt"):
        finetune_all(run_dir, both, pretrained=tmp_path / "x.pt")

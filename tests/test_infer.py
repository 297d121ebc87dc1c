"""Tests of sapkit.infer (issue 5, acceptance 2) and the ``sapkit predict`` command."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sapkit.checkpoints import save_checkpoint
from sapkit.config import ModelConfig, config_to_dict, load_config
from sapkit.errors import CheckpointError, ConfigError, SapkitError
from sapkit.infer import (
    LESION_COLUMNS,
    body_mask,
    count_windows,
    lesion_probability,
    lesion_table,
    load_model,
    predict_manifest,
    predict_probabilities,
    skeleton_labels,
    window_slices,
)
from sapkit.manifest import write_manifest
from sapkit.models import build_model

ROI = (16, 16, 16)
TINY = ModelConfig(backbone="unet", channels=(4, 8))


class Counting(nn.Module):
    """Counts the windows the network sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.n_windows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.n_windows += x.shape[0]
        return self.net(x)


def _phantom(shape=(37, 30, 53), centre=(12, 10), radii=(6, 5), z=(5, 40), seed=0) -> np.ndarray:
    """A narrow 'torso' (elliptic cylinder) in a wide field of view; noise-free air."""
    rng = np.random.default_rng(seed)
    x, y, zz = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    body = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 <= 1
    body &= (zz >= z[0]) & (zz < z[1])
    image = np.zeros((2, *shape), np.float32)
    image[:, body] = 0.3 + 0.7 * rng.random((2, int(body.sum())), dtype=np.float32)
    return image


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny convolutions run faster on one thread on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return build_model(TINY, 2, seed=0).eval()


@pytest.mark.parametrize("blend", ["constant", "gaussian"])
def test_body_skipping_equals_full_volume_inside_body_with_fewer_windows(net, blend):
    image = _phantom()  # 37 x 30 x 53: not a multiple of the 16^3 ROI
    body = body_mask(image)
    counted = Counting(net)
    full = predict_probabilities(counted, image, roi=ROI, overlap=0.5, blend=blend, sw_batch_size=3,
                                 skip_background=False)
    n_full = counted.n_windows
    counted.n_windows = 0
    skip = predict_probabilities(counted, image, roi=ROI, overlap=0.5, blend=blend, sw_batch_size=3)
    n_skip = counted.n_windows
    expected = count_windows(body, roi=ROI, overlap=0.5)
    assert n_full == expected.n_total == len(window_slices(image.shape[1:], roi=ROI, overlap=0.5)) == 4 * 3 * 6
    assert n_skip == expected.n_evaluated < n_full
    assert full.shape == skip.shape == (2, 37, 30, 53) and skip.dtype == np.float32
    assert np.abs(full - skip)[:, body].max() <= 1e-5
    # Outside the body: background only; probabilities still sum to one everywhere.
    assert skip[1][~body].max() == 0.0 and skip[0][~body].min() == 1.0
    np.testing.assert_allclose(skip.sum(axis=0), 1.0, atol=1e-5)


def test_crop_to_body_runs_on_the_body_box_grid(net):
    image = _phantom(shape=(50, 40, 45), centre=(25, 20), radii=(7, 6), z=(8, 30))
    body = body_mask(image)
    xs, ys, zs = (np.flatnonzero(body.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3))
    box = (slice(xs[0], xs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(zs[0], zs[-1] + 1))
    counted = Counting(net)
    crop = predict_probabilities(counted, image, roi=ROI, overlap=0.5, crop_to_body=True)
    inner = predict_probabilities(net, image[(slice(None), *box)], roi=ROI, overlap=0.5,
                                  body=np.ascontiguousarray(body[box]))
    np.testing.assert_array_equal(crop[(slice(None), *box)], inner)
    assert crop[1][~body].max() == 0.0 and crop[0][~body].min() == 1.0
    skip_count = count_windows(body, roi=ROI, overlap=0.5)
    crop_count = count_windows(body, roi=ROI, overlap=0.5, crop_to_body=True)
    assert counted.n_windows == crop_count.n_evaluated < skip_count.n_evaluated <= skip_count.n_total


def test_volume_smaller_than_roi_matches_monai_padding(net):
    image = _phantom(shape=(20, 11, 30), centre=(10, 5), radii=(5, 4), z=(3, 25))
    full = predict_probabilities(net, image, roi=ROI, overlap=0.5, skip_background=False)
    skip = predict_probabilities(net, image, roi=ROI, overlap=0.5)
    body = body_mask(image)
    assert skip.shape == (2, 20, 11, 30)
    assert np.abs(full - skip)[:, body].max() <= 1e-5
    lesion = lesion_probability(net, image, roi=ROI, overlap=0.5)
    np.testing.assert_array_equal(lesion, skip[1])


def test_flip_tta_is_flip_equivariant(net):
    image = _phantom(shape=(22, 19, 27), centre=(9, 8), radii=(6, 6), z=(2, 24))
    kw = dict(roi=ROI, overlap=0.5, sw_batch_size=4)
    tta = predict_probabilities(net, image, tta_flip=True, **kw)
    tta_flipped = predict_probabilities(net, np.flip(image, (1, 3)).copy(), tta_flip=True, **kw)
    assert tta.shape == (2, 22, 19, 27)
    np.testing.assert_allclose(tta_flipped, np.flip(tta, (1, 3)), atol=1e-5)
    plain = predict_probabilities(net, image, **kw)
    plain_flipped = predict_probabilities(net, np.flip(image, (1, 3)).copy(), **kw)
    assert np.abs(plain_flipped - np.flip(plain, (1, 3))).max() > 1e-4  # without TTA: not equivariant


def test_body_mask_fills_holes_and_drops_noise():
    image = _phantom(shape=(30, 30, 12), centre=(15, 15), radii=(8, 8), z=(0, 12))
    image[:, 13:17, 13:17, :] = 0.0   # a dark 'airway' through the body
    image[:, 2, 2, 2] = 0.9            # one noisy air voxel
    mask = body_mask(image, dilation_voxels=0)
    assert mask[15, 15, 6] and not mask[2, 2, 2] and not mask[0, 0, 0]
    assert body_mask(image, dilation_voxels=2).sum() > mask.sum()
    with pytest.raises(ConfigError, match="body threshold must be in"):
        body_mask(image, threshold=2.0)


def test_window_grid_is_monai_grid():
    assert [s[2] for s in window_slices((16, 16, 40), roi=ROI, overlap=0.5)] == [
        slice(0, 16), slice(8, 24), slice(16, 32), slice(24, 40)]
    assert [s[0] for s in window_slices((10, 16, 16), roi=ROI, overlap=0.5)] == [slice(0, 16)]  # padded


def test_skeleton_majority_vote_per_6_connected_piece():
    labels_in = np.zeros((6, 3, 1), np.int64)
    labels_in[0:4, 1, 0] = [2, 2, 3, 2]     # one 6-connected piece, majority class 2
    labels_in[5, 0, 0] = 3                  # isolated voxel, keeps 3
    labels_in[4, 2, 0] = 1                  # only diagonal to the piece: separate at 6-connectivity
    scores = np.eye(4, dtype=np.float32)[labels_in].transpose(3, 0, 1, 2)
    plain = skeleton_labels(scores, majority_vote=False)
    np.testing.assert_array_equal(plain, labels_in)
    voted = skeleton_labels(scores)
    assert voted.dtype == np.int16
    assert voted[0:4, 1, 0].tolist() == [2, 2, 2, 2]
    assert voted[5, 0, 0] == 3 and voted[4, 2, 0] == 1 and voted[0, 0, 0] == 0


def test_lesion_table_volumes_regions_and_empty():
    prob = np.zeros((20, 20, 10), np.float32)
    prob[2:4, 2:4, 2:4] = 0.9          # 8 voxels
    prob[10:15, 10:14, 5:7] = 0.6      # 40 voxels, max 0.8 below
    prob[12, 12, 6] = 0.8
    prob[18, 18, 8] = 0.4              # below threshold
    skeleton = np.zeros(prob.shape, np.int16)
    skeleton[10:15, 10:12, 5:7] = 5     # pelvis under half the second lesion
    skeleton[10:15, 12:14, 5:6] = 2
    spacing = (2.0, 1.5, 4.0)           # 12 mm^3 = 0.012 mL per voxel
    mask, table = lesion_table(prob, threshold=0.5, spacing_mm=spacing, skeleton=skeleton, scan_id="p1")
    assert list(table.columns) == list(LESION_COLUMNS)
    assert table["n_voxels"].tolist() == [8, 40]
    np.testing.assert_allclose(table["volume_ml"], [0.096, 0.48])
    assert table["max_probability"].tolist() == pytest.approx([0.9, 0.8])
    assert table["bone_region"].tolist() == ["none", "pelvis"]
    assert mask.sum() == 48 and mask.dtype == np.uint8
    mask, table = lesion_table(prob, threshold=0.5, spacing_mm=spacing, min_volume_ml=0.1)
    assert table["n_voxels"].tolist() == [40] and mask.sum() == 40 and table["bone_region"].tolist() == [""]
    mask, table = lesion_table(np.zeros((5, 5, 5)), threshold=0.5, spacing_mm=(1, 1, 1))
    assert table.empty and list(table.columns) == list(LESION_COLUMNS) and mask.sum() == 0


def _write_scan(root: Path, name: str, data: np.ndarray, affine: np.ndarray) -> str:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)   # scanner
    img.set_sform(affine, code=2)   # aligned
    nib.save(img, str(root / name))
    return name


@pytest.fixture
def wb_manifest(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    affine = np.array([[-3.0, 0, 0, 90], [0, 3.0, 0, -60], [0, 0, 3.0, -300], [0, 0, 0, 1]])  # LAS
    rows = []
    for k in range(2):
        image = _phantom(shape=(37, 30, 45), seed=k) * 400.0
        lesion = np.zeros(image.shape[1:], np.uint8)
        lesion[11:14, 9:12, 20:23] = 1
        skeleton = np.zeros(image.shape[1:], np.int16)
        skeleton[10:15, 8:13, 15:30] = 3
        rows.append({
            "scan_id": f"p{k}", "subject_id": f"s{k}", "site": "a", "cohort": "patient",
            "t1": _write_scan(root, f"p{k}_t1.nii.gz", image[0], affine),
            "b1000": _write_scan(root, f"p{k}_b.nii.gz", image[1], affine),
            "skeleton_label": _write_scan(root, f"p{k}_skel.nii.gz", skeleton, affine) if k == 0 else "",
            "lesion_label": _write_scan(root, f"p{k}_les.nii.gz", lesion, affine),
        })
    return write_manifest(root, pd.DataFrame(rows), name="wb", description="whole-body test")


def _config(**extra):
    return load_config("smoke", {"model.channels": [4, 8], "infer.roi": list(ROI), "infer.overlap": 0.5, **extra})


def test_predict_manifest_keeps_grid_and_header_codes(wb_manifest, tmp_path, net):
    out = tmp_path / "pred"
    summary = predict_manifest(net, wb_manifest, out, config=_config(), threshold=0.5, progress=False)
    assert summary["scan_id"].tolist() == ["p0", "p1"]
    assert (summary["n_windows_evaluated"] < summary["n_windows"]).all()
    src = nib.load(str(wb_manifest.parent / "p0_t1.nii.gz"))
    for sid in ("p0", "p1"):
        prob = nib.load(str(out / f"{sid}_prob.nii.gz"))
        np.testing.assert_array_equal(prob.affine, src.affine)
        assert int(prob.header["qform_code"]) == 1 and int(prob.header["sform_code"]) == 2
        assert prob.shape == (37, 30, 45) and prob.get_data_dtype() == np.uint16  # 'float16': 16-bit storage
        data = prob.get_fdata()
        assert prob.dataobj.slope == pytest.approx(1 / 65535)
        assert 0.0 <= data.min() and data.max() <= 1.0
        mask = nib.load(str(out / f"{sid}_mask.nii.gz"))
        np.testing.assert_array_equal(mask.affine, src.affine)
        np.testing.assert_array_equal(mask.get_fdata() > 0, data >= 0.5)
        table = pd.read_csv(out / f"{sid}_lesions.csv", keep_default_na=False)
        assert list(table.columns) == list(LESION_COLUMNS)
    predict_manifest(net, wb_manifest, out, config=_config(), scan_ids=["p1"], progress=False)  # another fold
    table = pd.read_csv(out / "predictions.csv")
    assert table["scan_id"].tolist() == ["p0", "p1"] and table["n_lesions"].tolist()[1] == -1


def test_checkpoint_round_trip_and_cli(wb_manifest, tmp_path):
    from sapkit.cli import main

    config = _config()
    model = build_model(config.model, 2, seed=3)
    ckpt = save_checkpoint(tmp_path / "model_final.pt", state_dict=model.state_dict(), epoch=1,
                           config=config_to_dict(config))
    loaded = load_model(ckpt, config.model, out_channels=2)
    x = torch.rand(1, 2, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.eval()(x))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(ckpt, config.model, out_channels=10)
    out = tmp_path / "cli"
    code = main(["predict", "--checkpoint", str(ckpt), "--manifest", str(wb_manifest.parent), "--out", str(out),
                 "--threshold", "0.5", "--min-volume-ml", "0.1", "--no-progress",
                 "-p", "model.channels=[4,8]", "-p", "infer.roi=[16,16,16]", "-p", "infer.prob_dtype=float32"])
    assert code == 0
    prob = nib.load(str(out / "p1_prob.nii.gz"))
    assert prob.get_data_dtype() == np.float32
    ref = lesion_probability(loaded, _load_scaled(wb_manifest, "p1"), roi=ROI, overlap=0.25)
    np.testing.assert_allclose(prob.get_fdata(), ref, atol=1e-5)  # smoke profile: overlap 0.25
    assert (out / "p1_mask.nii.gz").is_file()
    assert main(["predict", "--checkpoint", str(tmp_path / "nope.pt"), "--manifest", str(wb_manifest.parent),
                 "--out", str(out)]) == 1


def _load_scaled(manifest_yaml: Path, scan_id: str) -> np.ndarray:
    from sapkit.data import load_case
    from sapkit.manifest import load_manifest

    return load_case(load_manifest(manifest_yaml), scan_id).image


def test_input_errors(net):
    image = _phantom(shape=(20, 20, 20))
    with pytest.raises(ConfigError, match="blend must be one of"):
        predict_probabilities(net, image, roi=ROI, blend="linear")
    with pytest.raises(ConfigError, match="overlap must be in"):
        predict_probabilities(net, image, roi=ROI, overlap=1.0)
    with pytest.raises(SapkitError, match=r"channels-first \(C, X, Y, Z\)"):
        predict_probabilities(net, image[0], roi=ROI)
    with pytest.raises(SapkitError, match="body mask shape"):
        predict_probabilities(net, image, roi=ROI, body=np.ones((5, 5, 5), bool))
    with pytest.raises(ConfigError, match="threshold must be in"):
        lesion_table(image[0], threshold=0.0, spacing_mm=(1, 1, 1))

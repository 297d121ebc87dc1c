"""Tests of sapkit.inference.predict: checkpoint → model, manifest-level prediction and ``sapkit predict``."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from sapkit.io.checkpoints import save_checkpoint
from sapkit.config import ModelConfig, config_to_dict, load_config
from sapkit.errors import CheckpointError
from sapkit.inference.sliding_window import lesion_probability
from sapkit.data.manifest import write_manifest
from sapkit.networks.factory import build_model
from sapkit.inference.postprocess import LESION_COLUMNS, lesion_components
from sapkit.inference.predict import load_model, predict_manifest

ROI = (16, 16, 16)
from test_sliding_window import TINY, net  # noqa: F401  (the shared tiny network fixture)
from test_sliding_window import _phantom as _infer_phantom


def _phantom(seed: int = 0) -> np.ndarray:
    """The narrow torso of test_sliding_window, 45 slices long."""
    return _infer_phantom(shape=(37, 30, 45), seed=seed)


pytestmark = pytest.mark.usefixtures("one_math_thread")


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
        image = _phantom(seed=k) * 400.0
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
    skeleton = np.asarray(nib.load(str(wb_manifest.parent / "p0_skel.nii.gz")).dataobj)
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
        stored = np.asarray(prob.dataobj.get_unscaled()).astype(np.float32) * np.float32(1 / 65535)  # as predict
        components, expected = lesion_components(stored, threshold=0.5, spacing_mm=(3.0, 3.0, 3.0),
                                                  scan_id=sid, skeleton=skeleton if sid == "p0" else None)
        np.testing.assert_array_equal(mask.get_fdata() > 0, components > 0)
        assert table["n_voxels"].tolist() == expected["n_voxels"].tolist()
        np.testing.assert_allclose(table["max_prob"], expected["max_prob"], atol=1e-6)
        assert table["bone_region"].tolist() == expected["bone_region"].tolist()
    predict_manifest(net, wb_manifest, out, config=_config(), scan_ids=["p1"], progress=False)  # another fold
    table = pd.read_csv(out / "predictions.csv")
    assert table["scan_id"].tolist() == ["p0", "p1"] and table["n_lesions"].tolist()[1] == -1


def test_preloaded_cases_are_used_instead_of_the_files(wb_manifest, tmp_path, net, monkeypatch):
    """finetune/finetune_all pass the scans they already hold: same maps, no second read."""
    import sapkit.data.cases
    from sapkit.data.cases import load_cases
    from sapkit.data.manifest import load_manifest

    config = _config(**{"infer.prob_dtype": "float32"})
    manifest = load_manifest(wb_manifest)
    cases = {c.scan_id: c for c in load_cases(manifest, percentiles=config.preprocess.clip_percentiles)}
    predict_manifest(net, manifest, tmp_path / "files", config=config, progress=False)

    def no_reading(*args, **kwargs):
        raise AssertionError("a preloaded scan was read again")

    monkeypatch.setattr(sapkit.data.cases, "load_case", no_reading)
    predict_manifest(net, manifest, tmp_path / "preloaded", config=config, progress=False, cases=cases)
    for sid in ("p0", "p1"):
        a = nib.load(str(tmp_path / "files" / f"{sid}_prob.nii.gz")).get_fdata()
        b = nib.load(str(tmp_path / "preloaded" / f"{sid}_prob.nii.gz")).get_fdata()
        np.testing.assert_array_equal(a, b)


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
    from sapkit.data.cases import load_case
    from sapkit.data.manifest import load_manifest

    return load_case(load_manifest(manifest_yaml), scan_id).image



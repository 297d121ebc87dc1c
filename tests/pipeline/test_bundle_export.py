"""MONAI bundle export: metadata keys (checked offline), network rebuild, and `python -m monai.bundle run`
on an exported smoke-run bundle, whose maps equal `sapkit predict` inside the body."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from sapkit.cli import main
from sapkit.config import ModelConfig, config_to_dict, load_config
from sapkit.data.cases import load_case
from sapkit.data.manifest import load_manifest, write_manifest
from sapkit.data.splits import fold_subjects, load_splits
from sapkit.errors import CheckpointError, ConfigError
from sapkit.inference.predict import predict_manifest
from sapkit.inference.sliding_window import body_mask
from sapkit.io.checkpoints import save_checkpoint
from sapkit.io.run_paths import RunDir
from sapkit.io.run_record import prepare_run_dir
from sapkit.networks.factory import build_model
from sapkit.pipeline.bundle_export import (BUNDLE_SCHEMA_URL, CHANNELS, REQUIRED_METADATA_KEYS, REQUIRED_TENSOR_KEYS,
                                           BundleDir, export_bundle, network_config, stack_channels)
from sapkit.training.model_card import write_model_card

AFFINE = np.array([[-3.0, 0, 0, 90], [0, 3.0, 0, -60], [0, 0, 3.0, -300], [0, 0, 0, 1]])  # LAS, 3 mm


def _save(path: Path, array: np.ndarray) -> str:
    img = nib.Nifti1Image(array, AFFINE)
    img.set_qform(AFFINE, code=1)
    img.set_sform(AFFINE, code=2)
    nib.save(img, str(path))
    return path.name


def _tiny_run(root: Path, **overrides) -> tuple[Path, Path]:
    """A run folder (config.yaml, a lesion checkpoint, its model card, fingerprint, threshold) and a manifest
    of two narrow-torso scans in a wide field of view (so that `sapkit predict` skips windows)."""
    data = root / "data"
    data.mkdir(parents=True)
    shape = (48, 40, 40)
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    body = (((x - 16) / 8.0) ** 2 + ((y - 14) / 6.0) ** 2 <= 1) & (z < 30)
    rows = []
    for k in range(2):
        rng = np.random.default_rng(k)
        t1 = rng.uniform(0, 5, shape) + body * rng.normal(400, 40, shape)
        b1000 = rng.uniform(0, 20, shape) + body * rng.normal(100, 30, shape)
        lesion = np.zeros(shape, np.uint8)
        lesion[14:18, 12:16, 20:24] = 1
        b1000[lesion > 0] += 600
        rows.append({"scan_id": f"p{k}", "subject_id": f"s{k}", "site": "a", "cohort": "patient",
                     "t1": _save(data / f"p{k}_t1.nii.gz", t1.astype(np.float32)),
                     "b1000": _save(data / f"p{k}_b.nii.gz", b1000.astype(np.float32)), "skeleton_label": "",
                     "lesion_label": _save(data / f"p{k}_les.nii.gz", lesion)})
    manifest = write_manifest(data, pd.DataFrame(rows), name="wb", description="bundle test")
    config = load_config("smoke", {"model.channels": [4, 8], "infer.roi": [16, 16, 16], "infer.overlap": 0.5,
                                   "infer.prob_dtype": "float32", **overrides})
    rd = prepare_run_dir(root / "run", config)
    md = rd.lesion("sap", 0)
    net = build_model(config.model, 2, seed=3)
    save_checkpoint(md.model("final"), state_dict=net.state_dict(), epoch=1, config=config_to_dict(config),
                    extra={"task": "lesion"})
    write_model_card(md.path, task="lesion", config=config, log=pd.DataFrame({"epoch": [0, 1], "val_score": [0.1, 0.2]}),
                     card={"summary": "test lesion model", "label_map": {0: "background", 1: "lesion"},
                           "roi": config.lesion.roi}, best_score=0.2)
    rd.fingerprint_json.write_text(json.dumps({"dataset": {"median_spacing_mm": [3.0, 3.0, 3.0]}}))
    rd.threshold_json.parent.mkdir(parents=True, exist_ok=True)
    rd.threshold_json.write_text(json.dumps({"sap": {"threshold": 0.35, "value": 0.5}}))
    rd.splits_json.write_text(json.dumps({"k": 2, "seed": 0, "tuning_fold": 1, "folds": {"0": ["s1"], "1": ["s0"]},
                                          "healthy": {"train": [], "val": []}}))
    return rd.path, manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return _tiny_run(tmp_path_factory.mktemp("bundle"))


def _run_bundle(bundle: Path, inputs: Path, out: Path) -> subprocess.CompletedProcess:
    """`python -m monai.bundle run …` in a fresh process in which ``import sapkit`` fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = ("import runpy, sys; sys.modules['sapkit'] = None; "
            "runpy.run_module('monai.bundle', run_name='__main__', alter_sys=True)")  # = python -m monai.bundle
    cmd = [sys.executable, "-c", code, "run", "--config_file", str(BundleDir(bundle).inference_json),
           "--bundle_root", str(bundle), "--dataset_dir", str(inputs), "--output_dir", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=str(out.parent))


def test_metadata_has_the_schema_keys_and_the_preprocessing_facts(tiny, tmp_path):
    run, _ = tiny
    bundle = BundleDir(export_bundle(run, init="sap", fold=0, out=tmp_path / "b", authors="Lab X"))
    meta = json.loads(bundle.metadata_json.read_text())
    assert meta["schema"] == BUNDLE_SCHEMA_URL
    assert set(REQUIRED_METADATA_KEYS) <= set(meta)
    for key in ("schema", "version", "monai_version", "pytorch_version", "numpy_version", "task", "description",
                "authors", "copyright", "license"):
        assert isinstance(meta[key], str) and meta[key], key
    assert isinstance(meta["required_packages_version"], dict) and "nibabel" in meta["required_packages_version"]
    assert "optional_packages_version" not in meta  # deprecated name: MONAI 1.6 rewrites it with a warning
    io = meta["network_data_format"]
    for tensor in (io["inputs"]["image"], io["outputs"]["pred"]):
        assert set(REQUIRED_TENSOR_KEYS) <= set(tensor)
        assert isinstance(tensor["num_channels"], int) and isinstance(tensor["is_patch_data"], bool)
        assert all(isinstance(v, (int, str)) for v in tensor["spatial_shape"]) and tensor["spatial_shape"] == [16] * 3
        assert all(isinstance(v, (int, float)) for v in tensor["value_range"])
        assert isinstance(tensor["channel_def"], dict)
    assert io["inputs"]["image"]["num_channels"] == 2 and io["inputs"]["image"]["channel_def"] == CHANNELS
    assert list(CHANNELS.values())[0].startswith("T1") and "b = 1000" in CHANNELS["1"]
    assert io["outputs"]["pred"]["channel_def"] == {"0": "background", "1": "lesion"}
    facts = meta["sapkit"]
    assert facts["intensity_scaling"]["percentiles"] == [1.0, 99.0] and facts["training_spacing_mm"] == [3.0] * 3
    assert facts["threshold"] == 0.35 and facts["source"]["init"] == "sap" and facts["source"]["epoch"] == 1
    assert meta["authors"] == "Lab X" and "Lab X" in meta["copyright"]
    readme = bundle.readme.read_text()
    assert readme.startswith("# Model card") and "0 = T1-weighted, 1 = DWI b = 1000" in readme
    assert "python -m monai.bundle run" in readme and bundle.license.is_file()
    infer = json.loads(bundle.inference_json.read_text())
    assert infer["roi_size"] == [16, 16, 16] and infer["overlap"] == 0.5 and infer["clip_percentiles"] == [1.0, 99.0]
    state = torch.load(bundle.model_pt, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values()) and "out.weight" in state


@pytest.mark.parametrize("model, size", [
    (ModelConfig(backbone="unet", channels=(4, 8, 16)), 32),
    (ModelConfig(backbone="dynunet", channels=(4, 8, 16)), 32),
    (ModelConfig(backbone="swinunetr", feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)), 64),
], ids=["unet", "dynunet", "swinunetr"])
def test_network_config_rebuilds_each_backbone_with_the_same_weights(model, size):
    from monai.bundle import ConfigParser

    reference = build_model(model, 2, seed=0).eval()
    parser = ConfigParser({"imports": ["$import collections", "$import torch"], **network_config(model)})
    net = parser.get_parsed_content("network_def").eval()
    net.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(1, 2, size, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))


def test_bundle_preprocessing_is_the_sapkit_scaling_in_channel_order(tmp_path):
    from monai.bundle import ConfigParser

    from sapkit.data.intensity import scale_intensity
    from sapkit.pipeline.bundle_export import inference_config

    config = load_config("smoke", {"preprocess.clip_percentiles": [2.0, 98.0]})
    pre = ConfigParser(inference_config(config, config.model)).get_parsed_content("preprocessing")
    rng = np.random.default_rng(0)
    raw = np.stack([rng.uniform(0, 1000, (9, 8, 7)), rng.gamma(2.0, 50.0, (9, 8, 7))], axis=-1).astype(np.float32)
    nib.save(nib.Nifti1Image(raw, AFFINE), str(tmp_path / "scan.nii.gz"))
    image = pre({"image": str(tmp_path / "scan.nii.gz")})["image"]
    expected = scale_intensity(np.moveaxis(raw, -1, 0), percentiles=(2.0, 98.0))
    assert tuple(image.shape) == (2, 9, 8, 7)
    assert float(np.abs(image.numpy() - expected).max()) < 1e-6  # channel 0 stays T1, channel 1 b1000
    np.testing.assert_allclose(np.asarray(image.affine), AFFINE)
    nib.save(nib.Nifti1Image(raw[..., 0], AFFINE), str(tmp_path / "t1_only.nii.gz"))
    with pytest.raises(RuntimeError) as info:
        pre({"image": str(tmp_path / "t1_only.nii.gz")})
    assert "has 7 channels after moving the 4th dimension first; give 4D NIfTI files" in str(info.value.__cause__)


def test_refuses_what_the_bundle_cannot_reproduce(tiny, tmp_path):
    run, _ = tiny
    with pytest.raises(ConfigError, match="infer.tta_flip=false"):
        export_bundle(run, init="sap", fold=0, out=tmp_path / "b", overrides={"infer.tta_flip": True})
    with pytest.raises(CheckpointError, match=r"fold_tune.*model_final\.pt does not exist.*sapkit train lesion"):
        export_bundle(run, init="sap", fold="tune", out=tmp_path / "b")
    with pytest.raises(ConfigError, match=r"config\.yaml does not exist"):
        export_bundle(tmp_path / "nowhere", init="sap", fold=0, out=tmp_path / "b")
    skel = RunDir(run).lesion("ssl", 0).model("final")
    save_checkpoint(skel, state_dict={"w": torch.zeros(1)}, epoch=1, extra={"task": "skeleton"})
    with pytest.raises(CheckpointError, match="'skeleton' checkpoint, not a lesion model"):
        export_bundle(run, init="ssl", fold=0, out=tmp_path / "b")


def test_stack_channels_keeps_order_and_grid(tiny, tmp_path):
    _, manifest = tiny
    (path,) = stack_channels(manifest, tmp_path / "in", scan_ids=["p1"])
    img = nib.load(str(path))
    assert path.name == "p1.nii.gz" and img.shape == (48, 40, 40, 2)
    np.testing.assert_array_equal(img.affine, AFFINE)
    data = np.asarray(img.dataobj)
    for c, name in enumerate(("p1_t1.nii.gz", "p1_b.nii.gz")):
        np.testing.assert_array_equal(data[..., c], np.asarray(nib.load(str(manifest.parent / name)).dataobj))


def test_bundle_run_equals_sapkit_predict_tiny_run(tiny, tmp_path):
    """The bundle's maps equal `sapkit predict`'s (0 outside the body) and its masks `sapkit predict --threshold`'s."""
    run, manifest = tiny
    assert main(["export", str(run), "--init", "sap", "--fold", "0", "--out", str(tmp_path / "bundle"),
                 "--inputs", str(manifest), "--scans", "p0", "p1"]) == 0
    out = tmp_path / "monai_out"
    out.mkdir()
    done = _run_bundle(tmp_path / "bundle", BundleDir(tmp_path / "bundle").inputs, out)
    assert done.returncode == 0, done.stderr[-3000:]
    config = load_config(RunDir(run).config_yaml)
    summary = predict_manifest(RunDir(run).lesion_model("sap", 0), manifest, tmp_path / "pred", config=config,
                               threshold=0.35, progress=False)
    assert (summary["n_windows_evaluated"] < summary["n_windows"]).all()  # body skipping was exercised
    unmasked = load_config(RunDir(run).config_yaml, {"infer.skip_background": False})
    predict_manifest(RunDir(run).lesion_model("sap", 0), manifest, tmp_path / "full", config=unmasked, progress=False)
    man = load_manifest(manifest)
    for scan_id in ("p0", "p1"):
        ours = nib.load(str(tmp_path / "pred" / f"{scan_id}_prob.nii.gz"))
        theirs = nib.load(str(out / f"{scan_id}_prob.nii.gz"))
        np.testing.assert_allclose(theirs.affine, ours.affine, atol=1e-6)
        body = body_mask(load_case(man, scan_id).image)
        a, b = ours.get_fdata(dtype=np.float32), theirs.get_fdata(dtype=np.float32)
        assert a.shape == b.shape and 0.05 < body.mean() < 0.5
        assert float(np.abs(a - b).max()) <= 1e-5 and not b[~body].any()  # 0 outside the body, as predict
        assert float(a[body].std()) > 1e-3  # the maps are not constant: the comparison has teeth
        mask = np.asarray(nib.load(str(out / f"{scan_id}_mask.nii.gz")).dataobj)
        np.testing.assert_array_equal(mask, np.asarray(nib.load(str(tmp_path / "pred" / f"{scan_id}_mask.nii.gz")).dataobj))
        assert mask.dtype == np.uint8 and 0 < mask.sum() and not mask[~body].any()
        full = nib.load(str(tmp_path / "full" / f"{scan_id}_prob.nii.gz")).get_fdata(dtype=np.float32)
        assert int((full[~body] >= 0.35).sum()) > 0  # without the body mask the threshold finds 'lesions' in the air


def test_bundle_body_mask_is_sapkit_predicts(tiny):
    """scripts/sapkit_postprocess.py (no sapkit import) gives sapkit's body mask: specks, holes, the dilation."""
    from sapkit.pipeline import bundle_postprocess

    _, manifest = tiny
    man = load_manifest(manifest)
    rng = np.random.default_rng(0)
    images = [load_case(man, s).image for s in ("p0", "p1")]
    noisy = rng.random((2, 30, 28, 26)).astype(np.float32) * 0.06  # specks around the 0.05 threshold
    noisy[0, 5:25, 6:22, 3:20] = 0.6
    noisy[0, 12:16, 12:15, :] = 0.0  # a tube (airway) and a closed cavity
    noisy[0, 8:11, 9:12, 8:11] = 0.0
    for image in [*images, noisy]:
        np.testing.assert_array_equal(bundle_postprocess.body_mask(image[0]), body_mask(image))
    source = Path(bundle_postprocess.__file__).read_text()
    assert "import sapkit" not in source and "from sapkit" not in source


def test_bundle_holds_a_licence_no_lock_no_local_path_and_only_the_scans_asked_for(tiny, tmp_path, capsys):
    run, manifest = tiny
    out = tmp_path / "share" / "bundle"
    args = ["export", str(run), "--init", "sap", "--fold", "0", "--out", str(out), "--inputs", str(manifest)]
    assert main(args) == 1 and "--scans ID [ID ...], or --scans held-out" in capsys.readouterr().err
    assert not (tmp_path / "share").exists() or not any((tmp_path / "share").iterdir())
    assert main([*args, "--scans", "p9"]) == 1 and "--scans ['p9'] are not scan ids" in capsys.readouterr().err
    assert main([*args, "--scans", "held-out"]) == 0
    bundle = BundleDir(out)
    assert sorted(p.name for p in bundle.inputs.iterdir()) == ["p1.nii.gz"]  # fold 0 holds out subject s1 only
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted([*(p.relative_to(out).as_posix() for p in bundle.files()), "inputs/p1.nii.gz"])
    assert sorted(p.name for p in (tmp_path / "share").iterdir()) == ["bundle"]  # no staging folder, no lock left
    licence = bundle.license.read_text()
    assert licence.startswith("MIT (sapkit code)") and "Permission is hereby granted" in licence
    for path in out.rglob("*"):
        if path.suffix in (".json", ".md", ".py") or path.name == "LICENSE":
            text = path.read_text()
            for local in (str(tmp_path), str(Path(run).resolve()), str(Path.home()) + "/"):
                assert local not in text, (path, local)
    meta = json.loads(bundle.metadata_json.read_text())
    assert meta["sapkit"]["source"]["run"] == "run" and "1st-99th percentile" in meta["description"]
    assert "1th" not in bundle.metadata_json.read_text()


def test_a_full_disk_leaves_no_partial_bundle_and_names_the_file(tiny, tmp_path, monkeypatch, capsys):
    import errno

    run, _ = tiny
    out = tmp_path / "bundles" / "b"
    assert main(["export", str(run), "--init", "sap", "--fold", "0", "--out", str(out)]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def torch_full(*args, **kwargs):  # what torch.save's C++ writer raises on a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0\n"
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    write_text = Path.write_text

    def text_full(self, *args, **kwargs):  # the disk fills up while the bundle is built (its lock record fits)
        if ".sapkit-export/bundle/" in self.as_posix():
            full()
        return write_text(self, *args, **kwargs)

    for writer, name in ((full, "models/model.pt"), (torch_full, "models/model.pt"), (None, "LICENSE")):
        with monkeypatch.context() as m:
            if writer is None:
                m.setattr(Path, "write_text", text_full)
            else:
                m.setattr("torch.save", writer)
            for dest in (out, tmp_path / "bundles" / "new"):
                capsys.readouterr()
                assert main(["export", str(run), "--init", "sap", "--fold", "0", "--out", str(dest)]) == 1
                err = capsys.readouterr().err
                assert "Traceback" not in err and f"cannot write {dest / name}: " in err, err
                assert "no space left" in err or "the disk is probably full" in err
        assert not (tmp_path / "bundles" / "new").exists()  # nothing partial: no configs/, no empty models/
        assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # old bundle kept
        assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == ["b"]  # no staging folder left


def test_export_refuses_a_folder_holding_other_files(tiny, tmp_path, capsys):
    run, _ = tiny
    out = tmp_path / "mine"
    (out / "eval").mkdir(parents=True)
    (out / "eval" / "p0_prob.nii.gz").write_bytes(b"a result of an earlier bundle run")
    (out / "notes.txt").write_text("keep me")
    assert main(["export", str(run), "--init", "sap", "--fold", "0", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds 2 file(s) that are not part of a sapkit bundle" in err and "choose another --out" in err
    assert (out / "notes.txt").read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_exported_smoke_run_bundle_equals_sapkit_predict(smoke_series, tmp_path):
    """Acceptance (issue 23): the SAP fold-0 model of the smoke series, exported with its held-out scans and run by
    MONAI alone, writes `sapkit predict`'s probability maps (0 outside the body) and, voxel for voxel, the mask of
    `sapkit predict --threshold` at the tuned threshold; the bundle holds those scans and no other."""
    rd = RunDir(smoke_series)
    bundle = BundleDir(tmp_path / "bundle")
    assert main(["export", str(smoke_series), "--init", "sap", "--fold", "0", "--out", str(bundle.path),
                 "--inputs", str(rd.data), "--scans", "held-out"]) == 0
    man = load_manifest(rd.data)
    held_out = set(fold_subjects(load_splits(smoke_series), "0"))
    scan_ids = [s for s, subj in zip(man.scans["scan_id"], man.scans["subject_id"]) if subj in held_out]
    assert scan_ids and sorted(p.name for p in bundle.inputs.iterdir()) == sorted(f"{s}.nii.gz" for s in scan_ids)
    assert len(scan_ids) < len(man.scans)
    threshold = json.loads(rd.threshold_json.read_text())["sap"]["threshold"]
    assert json.loads(bundle.metadata_json.read_text())["sapkit"]["threshold"] == threshold
    out = tmp_path / "monai_out"
    out.mkdir()
    done = _run_bundle(bundle.path, bundle.inputs, out)
    assert done.returncode == 0, done.stderr[-3000:]
    config = load_config(rd.config_yaml)
    predict_manifest(rd.lesion_model("sap", 0), man, tmp_path / "pred", config=config, scan_ids=scan_ids,
                     threshold=threshold, progress=False)
    n_lesion_voxels = 0
    for scan_id in scan_ids:
        body = body_mask(load_case(man, scan_id).image)
        theirs = nib.load(str(out / f"{scan_id}_prob.nii.gz")).get_fdata(dtype=np.float32)
        ours = nib.load(str(tmp_path / "pred" / f"{scan_id}_prob.nii.gz")).get_fdata(dtype=np.float32)
        stored = nib.load(str(rd.probability_map("sap", scan_id))).get_fdata(dtype=np.float32)  # notebook 04's
        assert float(np.abs(ours - theirs).max()) <= 1e-5  # float16 storage: within 7.7e-6; 0 outside the body
        assert float(np.abs(stored - theirs).max()) <= 1e-5 and not theirs[~body].any()
        mask = np.asarray(nib.load(str(out / f"{scan_id}_mask.nii.gz")).dataobj)
        np.testing.assert_array_equal(mask, np.asarray(nib.load(str(tmp_path / "pred" / f"{scan_id}_mask.nii.gz")).dataobj))
        n_lesion_voxels += int(mask.sum())
    assert n_lesion_voxels > 0  # the masks are not empty: the comparison has teeth

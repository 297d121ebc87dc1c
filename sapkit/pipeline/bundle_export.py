"""Export a trained lesion model as a MONAI bundle (``sapkit export``).

The bundle runs with MONAI, PyTorch and nibabel only (plus ``fire``, which MONAI's command line
needs) — no sapkit, no pytorch-ignite::

    BUNDLE/
      configs/metadata.json    inputs (2 channels, their order), intensity scaling, training spacing,
                               label map, tuned threshold, versions, licence; MONAI's required keys
      configs/inference.json   load → channels first → percentile scaling → sliding window → softmax
                               → lesion channel → <name>_prob.nii.gz
      models/model.pt          the network's state dict (weights only)
      docs/README.md           the model card and how to run the bundle
      docs/license.txt

Run it on a folder of two-channel NIfTI volumes (4D, ``X × Y × Z × 2``: channel 0 = T1,
1 = DWI b1000 on the T1 grid; :func:`stack_channels` writes them from a manifest)::

    python -m monai.bundle run --config_file BUNDLE/configs/inference.json --bundle_root BUNDLE \\
        --dataset_dir INPUTS --output_dir OUT

Inside the body its maps equal ``sapkit predict``'s (same scaling, channel order, window grid and
blending; ``sapkit predict`` only skips windows that do not touch the body and writes 0 outside
it). The sapkit intensity scaling (each channel clipped to its 1st–99th percentile over the whole
volume, rescaled to [0, 1]) is MONAI's ``ScaleIntensityRangePercentilesd(channel_wise=True)``.
Flip test-time augmentation and ``crop_to_body`` are not exported (inference is full-volume,
without flips); on CUDA the bundle runs in float32 (``sapkit predict -p infer.amp=false``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from sapkit.config import Config, ModelConfig
from sapkit.errors import CheckpointError, ConfigError
from sapkit.io.atomic import atomic_path, atomic_write_text
from sapkit.io.folders import BundleDir

__all__ = ["BUNDLE_SCHEMA_URL", "REQUIRED_METADATA_KEYS", "REQUIRED_TENSOR_KEYS", "CHANNELS",
           "export_bundle", "inference_config", "network_config", "stack_channels"]

#: MONAI's current metadata schema; ``monai.bundle verify_metadata`` downloads it (the tests check its keys offline).
BUNDLE_SCHEMA_URL = ("https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                     "meta_schema_20240725.json")
#: Keys that schema makes mandatory in ``metadata.json`` (``required_packages_version`` replaced
#: ``optional_packages_version``, which MONAI 1.6 renames with a deprecation warning).
REQUIRED_METADATA_KEYS = ("schema", "version", "monai_version", "pytorch_version", "numpy_version",
                          "required_packages_version", "task", "description", "authors", "copyright",
                          "network_data_format")
#: Keys the schema makes mandatory in every input/output tensor description.
REQUIRED_TENSOR_KEYS = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range")
#: Input channels in order.
CHANNELS = {"0": "T1-weighted", "1": "DWI b = 1000 s/mm² (resampled onto the T1 grid)"}


def network_config(model_config: ModelConfig, out_channels: int = 2) -> dict[str, Any]:
    """MONAI bundle config items that rebuild :func:`sapkit.networks.factory.build_model`'s network.

    Returns the items to merge into ``inference.json``; ``network_def`` is the network. The
    sapkit UNet (MONAI ``UNet`` + a 1×1×1 head) becomes ``torch.nn.Sequential(unet=…, out=…)``,
    whose ``state_dict`` keys are the sapkit model's.
    """
    m = model_config
    if m.backbone == "swinunetr":
        return {"network_def": {"_target_": "SwinUNETR", "in_channels": m.in_channels, "out_channels": out_channels,
                                "feature_size": m.feature_size, "depths": list(m.depths), "num_heads": list(m.num_heads),
                                "drop_rate": m.drop_rate, "attn_drop_rate": m.attn_drop_rate,
                                "dropout_path_rate": m.dropout_path_rate, "norm_name": m.norm_name,
                                "use_checkpoint": m.use_checkpoint, "spatial_dims": 3}}
    channels = [int(c) for c in m.channels]
    if m.backbone == "unet":
        return {"unet_body": {"_target_": "UNet", "spatial_dims": 3, "in_channels": m.in_channels,
                              "out_channels": channels[0], "channels": channels, "strides": [2] * (len(channels) - 1),
                              "num_res_units": 2, "norm": m.norm_name, "dropout": 0.0},
                "unet_head": {"_target_": "torch.nn.Conv3d", "in_channels": channels[0], "out_channels": out_channels,
                              "kernel_size": 1},
                "network_def": "$torch.nn.Sequential(collections.OrderedDict(unet=@unet_body, out=@unet_head))"}
    if m.backbone == "dynunet":
        n = len(channels)
        return {"network_def": {"_target_": "DynUNet", "spatial_dims": 3, "in_channels": m.in_channels,
                                "out_channels": out_channels, "kernel_size": [3] * n, "strides": [1] + [2] * (n - 1),
                                "upsample_kernel_size": [2] * (n - 1), "filters": channels,
                                "norm_name": m.norm_name, "res_block": True, "deep_supervision": False}}
    raise ConfigError(f"model.backbone {m.backbone!r} cannot be exported; use swinunetr, unet or dynunet")


def inference_config(config: Config, model_config: ModelConfig) -> dict[str, Any]:
    """The ``inference.json`` of a bundle for ``config`` (``preprocess``, ``infer``) and the network.

    Raises
    ------
    ConfigError
        ``infer.tta_flip`` or ``infer.crop_to_body`` is on (the bundle infers full-volume, without flips).
    """
    inf = config.infer
    if inf.tta_flip or inf.crop_to_body:
        raise ConfigError("the bundle infers over the full volume without flips; export with "
                          "-p infer.tta_flip=false -p infer.crop_to_body=false (its maps then equal "
                          "`sapkit predict` with those settings inside the body)")
    low, high = (float(p) for p in config.preprocess.clip_percentiles)
    channel_check = ("$lambda x: x if x.shape[0] == 2 else (_ for _ in ()).throw(ValueError("
                     "f'input {x.meta.get(\"filename_or_obj\")} has {x.shape[0]} channels after moving the 4th "
                     "dimension first; give 4D NIfTI files X x Y x Z x 2 (T1, b1000)'))")
    return {
        "imports": ["$import collections", "$import glob", "$import os", "$import numpy", "$import torch"],
        "bundle_root": ".",
        "dataset_dir": "$os.path.join(@bundle_root, 'inputs')",
        "output_dir": "$os.path.join(@bundle_root, 'eval')",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "roi_size": [int(r) for r in inf.roi],
        "overlap": float(inf.overlap),
        "sw_batch_size": int(inf.sw_batch_size),
        "blend": str(inf.blend),
        "clip_percentiles": [low, high],
        **network_config(model_config),
        "network": "$@network_def.to(@device)",
        "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@dataset_dir, '*.nii.gz')) "
                    "+ glob.glob(os.path.join(@dataset_dir, '*.nii')))]",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "reader": "NibabelReader", "image_only": True,
             "dtype": "$numpy.float32"},
            {"_target_": "EnsureChannelFirstd", "keys": "image", "channel_dim": -1},
            {"_target_": "Lambdad", "keys": "image", "func": channel_check},
            {"_target_": "ScaleIntensityRangePercentilesd", "keys": "image", "lower": "@clip_percentiles#0",
             "upper": "@clip_percentiles#1", "b_min": 0.0, "b_max": 1.0, "clip": True, "channel_wise": True},
            {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
        ]},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": "@roi_size", "sw_batch_size": "@sw_batch_size",
                    "overlap": "@overlap", "mode": "@blend", "sw_device": "@device", "device": "cpu"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Lambdad", "keys": "pred", "func": "$lambda x: x[1:2]"},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "prob",
             "output_ext": ".nii.gz", "output_dtype": "$numpy.float32", "resample": False,
             "separate_folder": False, "squeeze_end_dims": True, "print_log": False},
        ]},
        "predict": "$torch.no_grad()(lambda d: @postprocessing(dict(d, pred=@inferer(d['image'][None], @network)[0])))",
        "initialize": [
            "$@network.load_state_dict(torch.load(os.path.join(@bundle_root, 'models', 'model.pt'), "
            "map_location=@device, weights_only=True))",
            "$@network.eval()",
        ],
        "run": ["$collections.deque(map(@predict, @dataset), maxlen=0)"],
    }


def _metadata(config: Config, model_config: ModelConfig, *, init: str, fold: str, which: str, epoch: int, source: Path,
              spacing: Sequence[float] | None, threshold: float | None, authors: str, license_name: str,
              version: str) -> dict[str, Any]:
    import fire
    import monai
    import nibabel
    import numpy

    from sapkit import __version__

    low, high = (float(p) for p in config.preprocess.clip_percentiles)
    roi = [int(r) for r in config.infer.roi]
    scaling = (f"each channel clipped to its {low:g}th-{high:g}th percentile over the whole volume and rescaled "
               "to [0, 1]")
    tensor = {"type": "image", "modality": "MR", "spatial_shape": roi, "dtype": "float32", "is_patch_data": True}
    return {
        "schema": BUNDLE_SCHEMA_URL,
        "version": version,
        "changelog": {version: f"exported by sapkit {__version__} from {source} (init {init}, fold {fold}, "
                               f"model_{which}.pt, epoch {epoch})"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": {"nibabel": nibabel.__version__, "fire": fire.__version__},
        "name": f"sapkit bone-metastasis segmentation ({init}, fold {fold})",
        "task": "Bone-metastasis (lesion) segmentation in whole-body MRI from T1-weighted and DWI b1000 images",
        "description": (f"{model_config.backbone} lesion model trained with sapkit (initialisation '{init}', fold "
                        f"{fold}). Input: a 4D NIfTI per scan, channel 0 T1-weighted, channel 1 DWI b = 1000 "
                        f"s/mm² on the T1 grid; {scaling}. Output: the lesion probability map <name>_prob.nii.gz "
                        f"on the input grid (sliding window {roi} voxels, overlap {config.infer.overlap:g}, "
                        f"{config.infer.blend} blending)."),
        "authors": authors,
        "copyright": f"Copyright (c) {authors}",
        "license": license_name,
        "intended_use": "Research on bone-metastasis segmentation; not a medical device, not for clinical decisions.",
        "data_type": "nifti",
        "image_classes": f"2 channels: 0 = T1-weighted, 1 = DWI b1000 (on the T1 grid); {scaling}",
        "pred_classes": "1 channel: lesion probability in [0, 1] (softmax of the 2-class output, class 1)",
        "network_data_format": {
            "inputs": {"image": {**tensor, "format": "magnitude", "num_channels": 2, "value_range": [0, 1],
                                 "channel_def": dict(CHANNELS)}},
            "outputs": {"pred": {**tensor, "format": "labels", "num_channels": 2, "value_range": [],
                                 "channel_def": {"0": "background", "1": "lesion"}}},
        },
        "sapkit": {
            "channels": dict(CHANNELS),
            "grid": "each scan's own T1 grid (no resampling); the b1000 image must be on it (sapkit prepare)",
            "training_spacing_mm": None if spacing is None else [float(s) for s in spacing],
            "intensity_scaling": {"method": "percentile clip and rescale per channel", "percentiles": [low, high],
                                  "range": [0.0, 1.0]},
            "label_map": {"0": "background", "1": "lesion"},
            "threshold": threshold,
            "inference": {"roi": roi, "overlap": float(config.infer.overlap), "blend": config.infer.blend,
                          "sw_batch_size": int(config.infer.sw_batch_size),
                          "equals": "sapkit predict inside the body (max |difference| <= 1e-5); sapkit predict "
                                    "writes 0 outside the body, the bundle the network's output"},
            "source": {"run_dir": str(source), "init": init, "fold": fold, "checkpoint": f"model_{which}.pt",
                       "epoch": epoch, "sapkit_version": __version__},
        },
    }


def _readme(card: str, *, bundle_name: str) -> str:
    return card.rstrip() + f"""

## Running this MONAI bundle

Inputs: one 4D NIfTI per scan (`X × Y × Z × 2`, float), channel 0 = T1-weighted, channel 1 = DWI
b = 1000 s/mm² resampled onto the T1 grid; no other preprocessing (the bundle scales each channel to
its 1st–99th percentile itself). With only MONAI, PyTorch, nibabel and fire installed
(`pip install "monai[nibabel,fire]"`):

```bash
python -m monai.bundle run --config_file {bundle_name}/configs/inference.json --bundle_root {bundle_name} \\
    --dataset_dir INPUTS --output_dir OUT
```

writes `OUT/<name>_prob.nii.gz` (lesion probability, float32, the input's grid and affine) for every
`INPUTS/<name>.nii.gz`. Threshold it with `sapkit.threshold` of `configs/metadata.json` (tuned on
the tuning fold, when the run had one). Inside the body the maps equal `sapkit predict`'s (max
difference ≤ 1e-5); `sapkit predict` writes 0 outside the body. `sapkit.pipeline.bundle_export.stack_channels`
writes the inputs from a sapkit manifest.
"""


def stack_channels(manifest: Any, out_dir: str | Path, scan_ids: Sequence[str] | None = None) -> list[Path]:
    """Write ``<scan_id>.nii.gz`` 4D files (T1, b1000 as the 4th dimension) — the bundle's inputs.

    Parameters
    ----------
    manifest : str, Path or sapkit.data.manifest.Manifest
        Scans to convert (``manifest.yaml`` or its folder).
    out_dir : str or Path
        Output folder (created).
    scan_ids : sequence of str, optional
        Subset (default: all scans).

    Returns
    -------
    list of Path
        The written files, in ``scan_ids`` order.
    """
    import numpy as np

    from sapkit.data.manifest import Manifest, load_manifest
    from sapkit.io.nifti import read_scan, save_nifti

    man = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    out = Path(out_dir)
    written = []
    for scan_id in list(man.scans["scan_id"]) if scan_ids is None else list(scan_ids):
        row = man.row(scan_id)
        scan = read_scan(row["t1"], row["b1000"])
        path = save_nifti(np.moveaxis(scan.image, 0, -1), scan.affine, out / f"{scan_id}.nii.gz", header=scan.header,
                          dtype=np.float32)
        written.append(path)
    return written


def _check_bundle_network(bundle: BundleDir, reference: torch.nn.Module) -> None:
    """Build ``network_def`` from the written config, load the weights strictly, compare one forward pass."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle.inference_json))
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle.model_pt, map_location="cpu", weights_only=True), strict=True)
    roi = parser.get_parsed_content("roi_size")
    x = torch.linspace(0, 1, 2 * int(torch.tensor(roi).prod())).reshape(1, 2, *roi)
    with torch.no_grad():
        diff = float((net.eval()(x) - reference.eval()(x)).abs().max())
    if diff > 1e-5:
        raise CheckpointError(f"the bundle's network differs from the checkpoint's by {diff:.3g}; sapkit bug")


def export_bundle(run_dir: str | Path, *, init: str, fold: str | int, out: str | Path, which: str = "final",
                  overrides: Mapping[str, Any] | None = None, authors: str = "sapkit user",
                  license_name: str = "MIT (sapkit code); the weights inherit the terms of their training data",
                  version: str | None = None) -> Path:
    """Write the MONAI bundle of ``run_dir``'s lesion model ``init`` × ``fold`` into ``out``.

    Parameters
    ----------
    run_dir : str or Path
        A run folder with ``config.yaml`` and ``lesion/<init>/fold_<fold>/model_<which>.pt``.
    init : {"scratch", "ssl", "sap"}
    fold : str or int
        Test fold id or ``tune``.
    out : str or Path
        Bundle folder (created; existing bundle files are replaced).
    which : {"final", "best"}
        Checkpoint.
    overrides : mapping, optional
        Config overrides on top of the run's ``config.yaml`` (``{"infer.overlap": 0.5}``).
    authors, license_name, version : str
        Metadata; ``version`` defaults to the sapkit version.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        No ``config.yaml``, or inference settings the bundle cannot reproduce.
    CheckpointError
        Missing or unsafe checkpoint, or one that is not a lesion model.
    """
    from sapkit import __version__
    from sapkit.config import load_config
    from sapkit.inference.predict import load_model
    from sapkit.io.checkpoints import load_checkpoint, stored_model_config
    from sapkit.io.run_paths import RunDir

    rd = RunDir(run_dir)
    md = rd.lesion(init, fold)
    checkpoint = md.model(which)  # type: ignore[arg-type]
    if not rd.config_yaml.is_file():
        raise ConfigError(f"{rd.config_yaml} does not exist; export from a run folder whose configuration sapkit "
                          "recorded (`sapkit train`, `sapkit reproduce` and the notebooks write config.yaml), or "
                          "retrain into it with `sapkit train`")
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint} does not exist; train it first (`sapkit train lesion --init {init} "
                              f"--fold {fold} --run-dir {rd.path}`) or pick another --init/--fold/--which")
    config = load_config(rd.config_yaml, overrides)
    payload = load_checkpoint(checkpoint)
    task = payload.get("extra", {}).get("task") if isinstance(payload, dict) else None
    if task not in (None, "lesion"):
        raise CheckpointError(f"{checkpoint} is a {task!r} checkpoint, not a lesion model")
    model_config = stored_model_config(payload, config.model, checkpoint)
    model = load_model(checkpoint, config.model, out_channels=2)
    infer_json = inference_config(config, model_config)
    spacing = None
    if rd.fingerprint_json.is_file():
        spacing = json.loads(rd.fingerprint_json.read_text()).get("dataset", {}).get("median_spacing_mm")
    threshold = None
    if rd.threshold_json.is_file():
        entry = json.loads(rd.threshold_json.read_text()).get(init)
        threshold = float(entry["threshold"]) if isinstance(entry, dict) and "threshold" in entry else None
    bundle = BundleDir(Path(out))
    meta = _metadata(config, model_config, init=init, fold=str(fold), which=which, epoch=int(payload.get("epoch", 0)),
                     source=rd.path.resolve(), spacing=spacing, threshold=threshold, authors=authors,
                     license_name=license_name, version=version or __version__)
    atomic_write_text(bundle.metadata_json, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(bundle.inference_json, json.dumps(infer_json, indent=2) + "\n")
    with atomic_path(bundle.model_pt) as tmp:
        torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    card = md.model_card.read_text() if md.model_card.is_file() else f"# sapkit lesion model ({init}, fold {fold})\n"
    atomic_write_text(bundle.readme, _readme(card, bundle_name=bundle.path.name))
    atomic_write_text(bundle.license_txt, license_name + "\n")
    _check_bundle_network(bundle, model)
    return bundle.path

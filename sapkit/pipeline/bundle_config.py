"""What an exported MONAI bundle holds (:mod:`sapkit.pipeline.bundle_export` writes it): ``inference.json``,
``metadata.json``, the README and the LICENSE, built in memory from a run's configuration.

The inference pipeline is ``sapkit predict``'s: load → channels first → per-channel percentile
scaling → sliding window → softmax → lesion channel → :class:`sapkit.pipeline.bundle_postprocess.
SapkitPostprocessd` (body mask, the stored map, the tuned threshold) → ``<name>_prob.nii.gz`` and,
with a threshold, ``<name>_mask.nii.gz``. Nothing here names a local path: the run is named by its
folder's name, and :func:`scrub_local_paths` removes absolute paths from copied text (model cards).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from sapkit.config import Config, ModelConfig
from sapkit.errors import ConfigError

__all__ = ["BUNDLE_SCHEMA_URL", "REQUIRED_METADATA_KEYS", "REQUIRED_TENSOR_KEYS", "CHANNELS", "ordinal",
           "network_config", "inference_config", "metadata", "readme", "license_text", "scrub_local_paths"]

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
#: The module of the bundle's post-processing (``scripts/sapkit_postprocess.py``).
POSTPROCESS_TARGET = "scripts.sapkit_postprocess.SapkitPostprocessd"
_MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def ordinal(value: float) -> str:
    """An English ordinal for a percentile: ``1st``, ``2nd``, ``3rd``, ``11th``, ``99th``, ``99.5th``.

    Examples
    --------
    >>> [ordinal(v) for v in (1, 2, 3, 4, 11, 12, 13, 21, 22, 99, 99.5, 0.5)]
    ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '99th', '99.5th', '0.5th']
    """
    if not float(value).is_integer():
        return f"{value:g}th"
    n = int(value)
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def scrub_local_paths(text: str) -> str:
    """``text`` with every absolute path shortened to its last part (``/home/me/runs/x/m.pt`` → ``<local>/m.pt``).

    Examples
    --------
    >>> scrub_local_paths("Initialised from /tmp/run/skeleton/model_final.pt (12 tensors); lr 1/5.")
    'Initialised from <local>/model_final.pt (12 tensors); lr 1/5.'
    """
    posix = re.sub(r"(?<![\w.~:/])/(?:[^\s/`'\"()<>]+/)+([^\s/`'\"()<>]*)", r"<local>/\1", text)
    return re.sub(r"\b[A-Za-z]:\\(?:[^\s\\`'\"()<>]+\\)+([^\s\\`'\"()<>]*)", r"<local>\\\1", posix)


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


def _postprocessing(config: Config, threshold: float | None, min_volume_ml: float) -> list[dict[str, Any]]:
    save = {"_target_": "SaveImaged", "output_dir": "@output_dir", "output_ext": ".nii.gz", "resample": False,
            "separate_folder": False, "squeeze_end_dims": True, "print_log": False}
    steps = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "Lambdad", "keys": "pred", "func": "$lambda x: x[1:2]"},
        {"_target_": POSTPROCESS_TARGET, "keys": "pred", "image_key": "image", "prob_key": "prob",
         "threshold": threshold, "body": bool(config.infer.skip_background), "prob_dtype": str(config.infer.prob_dtype),
         "min_volume_ml": float(min_volume_ml), "connectivity": int(config.eval.connectivity)},
        {**save, "keys": "prob", "output_postfix": "prob", "output_dtype": "$numpy.float32"},
    ]
    if threshold is not None:
        steps.append({**save, "keys": "pred", "output_postfix": "mask", "output_dtype": "$numpy.uint8"})
    return steps


def inference_config(config: Config, model_config: ModelConfig, *, threshold: float | None = None,
                     min_volume_ml: float = 0.0) -> dict[str, Any]:
    """The ``inference.json`` of a bundle for ``config`` (``preprocess``, ``infer``, ``eval``) and the network.

    With ``threshold`` the bundle also writes ``<name>_mask.nii.gz`` (uint8 lesion mask, ``sapkit
    predict --threshold``'s rule) and its ``pred`` key holds that label map (what MONAI Label shows).

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
        "postprocessing": {"_target_": "Compose", "transforms": _postprocessing(config, threshold, min_volume_ml)},
        "predict": "$torch.no_grad()(lambda d: @postprocessing(dict(d, pred=@inferer(d['image'][None], @network)[0])))",
        "initialize": [
            "$@network.load_state_dict(torch.load(os.path.join(@bundle_root, 'models', 'model.pt'), "
            "map_location=@device, weights_only=True))",
            "$@network.eval()",
        ],
        "run": ["$collections.deque(map(@predict, @dataset), maxlen=0)"],
    }


def metadata(config: Config, model_config: ModelConfig, *, init: str, fold: str, which: str, epoch: int, run_name: str,
             spacing: Sequence[float] | None, threshold: float | None, threshold_source: str, min_volume_ml: float,
             authors: str, license_name: str, version: str) -> dict[str, Any]:
    """``metadata.json``: MONAI's required keys plus the ``sapkit`` facts (inputs, scaling, post-processing, source)."""
    import fire
    import monai
    import nibabel
    import numpy
    import scipy
    import torch

    from sapkit import __version__

    low, high = (float(p) for p in config.preprocess.clip_percentiles)
    roi = [int(r) for r in config.infer.roi]
    scaling = (f"each channel clipped to its {ordinal(low)}-{ordinal(high)} percentile over the whole volume and "
               "rescaled to [0, 1]")
    tensor = {"type": "image", "modality": "MR", "spatial_shape": roi, "dtype": "float32", "is_patch_data": True}
    body = bool(config.infer.skip_background)
    outputs = {"pred": {**tensor, "format": "labels", "num_channels": 2, "value_range": [],
                        "channel_def": {"0": "background", "1": "lesion"}}}
    if threshold is not None:
        outputs["label"] = {**tensor, "format": "segmentation", "num_channels": 1, "dtype": "uint8",
                            "value_range": [0, 1], "is_patch_data": False, "channel_def": {"0": "background", "1": "lesion"}}
    label = (f" and the lesion mask <name>_mask.nii.gz (uint8, probability >= {threshold:g})" if threshold is not None
             else "")
    return {
        "schema": BUNDLE_SCHEMA_URL,
        "version": version,
        "changelog": {version: f"exported by sapkit {__version__} from run '{run_name}' (init {init}, fold {fold}, "
                               f"model_{which}.pt, epoch {epoch})"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": {"nibabel": nibabel.__version__, "fire": fire.__version__, "scipy": scipy.__version__},
        "name": f"sapkit bone-metastasis segmentation ({init}, fold {fold})",
        "task": "Bone-metastasis (lesion) segmentation in whole-body MRI from T1-weighted and DWI b1000 images",
        "description": (f"{model_config.backbone} lesion model trained with sapkit (initialisation '{init}', fold "
                        f"{fold}). Input: a 4D NIfTI per scan, channel 0 T1-weighted, channel 1 DWI b = 1000 "
                        f"s/mm² on the T1 grid; {scaling}. Output: the lesion probability map <name>_prob.nii.gz"
                        f"{' (0 outside the body)' if body else ''}{label} on the input grid (sliding window {roi} "
                        f"voxels, overlap {config.infer.overlap:g}, {config.infer.blend} blending)."),
        "authors": authors,
        "copyright": f"Copyright (c) {authors}",
        "license": license_name,
        "intended_use": "Research on bone-metastasis segmentation; not a medical device, not for clinical decisions.",
        "data_type": "nifti",
        "image_classes": f"2 channels: 0 = T1-weighted, 1 = DWI b1000 (on the T1 grid); {scaling}",
        "pred_classes": ("the lesion mask (0 background, 1 lesion)" if threshold is not None else
                         "1 channel: lesion probability in [0, 1] (softmax of the 2-class output, class 1)"),
        "network_data_format": {
            "inputs": {"image": {**tensor, "format": "magnitude", "num_channels": 2, "value_range": [0, 1],
                                 "channel_def": dict(CHANNELS)}},
            "outputs": outputs,
        },
        "sapkit": {
            "channels": dict(CHANNELS),
            "grid": "each scan's own T1 grid (no resampling); the b1000 image must be on it (sapkit prepare)",
            "training_spacing_mm": None if spacing is None else [float(s) for s in spacing],
            "intensity_scaling": {"method": "percentile clip and rescale per channel", "percentiles": [low, high],
                                  "range": [0.0, 1.0]},
            "label_map": {"0": "background", "1": "lesion"},
            "threshold": threshold,
            "threshold_source": threshold_source,
            "postprocessing": {"body_mask": body, "probability_outside_body": 0.0 if body else "network output",
                               "stored_as": str(config.infer.prob_dtype), "min_volume_ml": float(min_volume_ml),
                               "connectivity": int(config.eval.connectivity),
                               "module": "scripts/sapkit_postprocess.py"},
            "inference": {"roi": roi, "overlap": float(config.infer.overlap), "blend": config.infer.blend,
                          "sw_batch_size": int(config.infer.sw_batch_size),
                          "equals": "sapkit predict: probability maps within 1e-5 inside the body and 0 outside it; "
                                    "the mask voxel for voxel (`sapkit predict --threshold` with the same threshold)"},
            "source": {"run": run_name, "init": init, "fold": fold, "checkpoint": f"model_{which}.pt",
                       "epoch": epoch, "sapkit_version": __version__},
        },
    }


def readme(card: str, *, bundle_name: str, threshold: float | None, body: bool) -> str:
    """``docs/README.md``: the model card (local paths removed) and how to run the bundle."""
    outputs = ("`OUT/<name>_prob.nii.gz` (lesion probability, float32, the input's grid and affine"
               + ("; 0 outside the body, as `sapkit predict` writes it)" if body else ")"))
    if threshold is not None:
        outputs += (f" and `OUT/<name>_mask.nii.gz` (uint8 lesion mask: probability ≥ {threshold:g}, the tuned threshold "
                    "of `configs/metadata.json`, inside the body) — the mask `sapkit predict --threshold` writes, voxel "
                    "for voxel")
    else:
        outputs += ("; no lesion mask: the run had no tuned threshold (export again with `--threshold T` for "
                    "`<name>_mask.nii.gz`)")
    return scrub_local_paths(card).rstrip() + f"""

## Running this MONAI bundle

Inputs: one 4D NIfTI per scan (`X × Y × Z × 2`, float), channel 0 = T1-weighted, channel 1 = DWI
b = 1000 s/mm² resampled onto the T1 grid; no other preprocessing (the bundle scales each channel to
its 1st–99th percentile itself). With only MONAI, PyTorch, nibabel, scipy and fire installed
(`pip install "monai[nibabel,fire]" scipy`):

```bash
python -m monai.bundle run --config_file {bundle_name}/configs/inference.json --bundle_root {bundle_name} \\
    --dataset_dir INPUTS --output_dir OUT
```

writes {outputs} for every `INPUTS/<name>.nii.gz`. The post-processing is `sapkit predict`'s
(`scripts/sapkit_postprocess.py`: the body mask, the map as sapkit stores it, the threshold); the
`pred` key of the `postprocessing` section holds the lesion mask, which MONAI Label and 3D Slicer
show. Use the mask rather than thresholding the probability map yourself.
`sapkit.pipeline.bundle_export.stack_channels` writes the inputs from a sapkit manifest.
"""


def license_text(license_name: str, authors: str) -> str:
    """``LICENSE`` at the bundle root: the licence statement of the weights, and the MIT licence of the sapkit code."""
    return (f"{license_name}\n\nModel weights (models/model.pt): {authors}; they inherit the terms of the data they "
            "were trained on.\n\nThe sapkit code in this bundle (configs/inference.json, scripts/) is under the MIT "
            f"License:\n\nCopyright (c) 2026 The sapkit developers\n\n{_MIT}")

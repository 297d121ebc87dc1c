"""Checkpoint → model, and lesion prediction for every scan of a manifest (``sapkit predict``).

:func:`load_model` rebuilds a network from a sapkit checkpoint (``weights_only=True``);
:func:`predict_manifest` runs whole-body inference (:mod:`sapkit.inference.sliding_window`) on each scan, writes its
probability map and, at a threshold, its lesion mask and lesion table
(:func:`sapkit.inference.postprocess.lesion_components`), plus one ``predictions.csv`` summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from sapkit.config import Config, ModelConfig
from sapkit.errors import CheckpointError, ConfigError
from sapkit.inference.sliding_window import body_mask, count_windows, lesion_probability, predict_probabilities, resolve_device, skeleton_labels
from sapkit.inference.postprocess import lesion_components
from sapkit.io.checkpoints import load_checkpoint, stored_model_config
from sapkit.networks.factory import build_model
from sapkit.networks.finite import first_nonfinite
from sapkit.jobs.progress import progress_bar

__all__ = ["load_model", "declare_outputs", "predict_manifest"]

#: Columns of ``predictions.csv`` (one row per scan).
_SUMMARY_COLUMNS = ["scan_id", "prob_path", "mask_path", "lesions_path", "n_lesions", "n_windows",
                    "n_windows_evaluated", "seconds"]


def load_model(checkpoint: str | Path | nn.Module, model_config: ModelConfig, *, out_channels: int = 2) -> nn.Module:
    """A network with a checkpoint's weights (``weights_only=True``), on the CPU.

    Parameters
    ----------
    checkpoint : str, Path or torch.nn.Module
        A sapkit checkpoint (``sapkit.io.checkpoints``) or a bare state dict file; a module is
        returned as is.
    model_config : sapkit.config.ModelConfig
        Architecture; the ``model`` section stored in the checkpoint, when present, wins.
    out_channels : int
        Classes of the head (2 lesion, 10 skeleton).

    Raises
    ------
    CheckpointError
        Unsafe/unreadable file, weights that do not fit the architecture or are not finite, or a
        stored model configuration that cannot be built.
    """
    if isinstance(checkpoint, nn.Module):
        return checkpoint

    payload = load_checkpoint(checkpoint)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {checkpoint} holds no state_dict of tensors; pass a sapkit checkpoint")
    model_config = stored_model_config(payload, model_config, checkpoint)
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    bad = first_nonfinite(state.items())
    if bad is not None:
        raise CheckpointError(f"checkpoint {checkpoint} holds non-finite weights (NaN/inf, e.g. {bad}): it comes from a "
                              "diverged training run and would predict nothing; retrain with a lower learning rate")
    try:
        model = build_model(model_config, out_channels)
    except (ConfigError, TypeError, ValueError, RuntimeError) as exc:  # checked types, impossible sizes (-8 channels)
        raise CheckpointError(f"checkpoint {checkpoint} stores a model configuration sapkit cannot build ({exc}); "
                              "it was not written by this sapkit version or was edited — retrain or re-save it") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {checkpoint} does not fit a {model_config.backbone} with {out_channels} outputs "
            f"({first}); check model.* settings and the checkpoint's task"
        ) from None
    return model


def declare_outputs(plan: Any, checkpoint: Any, manifest: Any, out_dir: str | Path, *, threshold: float | None = None,
                    scan_ids: Sequence[str] | None = None, skeleton_checkpoint: Any = None, flag: str = "--out") -> None:
    """Declare in ``plan`` (:class:`sapkit.io.output_paths.OutputPlan`) what :func:`predict_manifest` reads and writes.

    Reads the checkpoints (when given as files) and the manifest with every file it names; writes
    ``out_dir`` (locked), each scan's ``<scan_id>_prob.nii.gz`` (with ``threshold`` also its mask and
    lesion table) and ``predictions.csv``.
    """
    from sapkit.data.manifest import declare_manifest_inputs
    from sapkit.io.run_paths import PredictionDir

    for path, what in ((checkpoint, "the lesion model checkpoint"), (skeleton_checkpoint, "the skeleton model checkpoint")):
        if isinstance(path, (str, Path)):
            plan.reads(path, what)
    man = declare_manifest_inputs(plan, manifest)
    plan.writes_folder(out_dir, flag, lock=True)
    ids = list(scan_ids) if scan_ids is not None else [] if man is None else list(man.scans["scan_id"])
    files = PredictionDir(out_dir)
    names = [files.probability_map(i) for i in ids] + [files.summary_csv]
    if threshold is not None:
        names += [files.mask(i) for i in ids] + [files.lesion_table(i) for i in ids]
    for path in names:
        plan.writes(path, flag, folder=out_dir)


def predict_manifest(
    checkpoint: str | Path | nn.Module,
    manifest: Any,
    out_dir: str | Path,
    *,
    config: Config,
    threshold: float | None = None,
    min_volume_ml: float = 0.0,
    scan_ids: Sequence[str] | None = None,
    skeleton_checkpoint: str | Path | nn.Module | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    cases: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Predict lesion probability maps (and optionally masks + lesion tables) for a manifest.

    Writes, per scan, into ``out_dir``:

    - ``<scan_id>_prob.nii.gz`` — lesion probability on the input grid, with the input's affine
      and qform/sform codes. ``config.infer.prob_dtype`` ``float32`` stores float32;
      ``float16`` stores 16 bits per voxel — NIfTI-1 has no float16 type, so the map is
      quantised to uint16 with ``scl_slope = 1/65535`` (readers that apply the slope, such as
      nibabel's ``get_fdata``, see values in [0, 1] within 7.7e-6); masks and tables are
      computed from the stored values so they agree with the file;
    - with ``threshold``: ``<scan_id>_mask.nii.gz`` (uint8) and ``<scan_id>_lesions.csv``
      (:data:`sapkit.inference.postprocess.LESION_COLUMNS`, lesions by decreasing volume; bone region from the manifest's skeleton label, else from
      ``skeleton_checkpoint`` when given);

    and ``predictions.csv`` with one row per scan (rows of other scans already in the file are
    kept, so folds can predict into one folder). Every file is written atomically. Before the
    first, an output that would replace an input (a file the manifest names, the checkpoint) or
    leave ``out_dir`` is refused (:func:`declare_outputs`, :mod:`sapkit.io.output_paths`).

    Parameters
    ----------
    checkpoint : str, Path or torch.nn.Module
        Lesion model (2 outputs).
    manifest : str, Path or sapkit.data.manifest.Manifest
        Scans to read (``manifest.yaml`` or its folder).
    out_dir : str or Path
        Output folder (created).
    config : sapkit.config.Config
        Uses ``infer``, ``model``, ``preprocess``, ``eval.connectivity`` and ``device``.
    threshold : float, optional
        Lesion threshold on the probability map.
    min_volume_ml : float
        Lesions below this volume are dropped from mask and table.
    scan_ids : sequence of str, optional
        Subset of scans (default: all).
    skeleton_checkpoint : str, Path or torch.nn.Module, optional
        Skeleton model (10 outputs) used for ``bone_region`` when a scan has no skeleton label.
    device : str or torch.device, optional
        Overrides ``config.device``.
    progress : bool
        tqdm progress bar over scans.
    cases : mapping scan_id → Case, optional
        Scans already read and preprocessed with ``config.preprocess`` (used instead of the files).

    Returns
    -------
    DataFrame
        scan_id, prob_path, mask_path, lesions_path, n_lesions, n_windows, n_windows_evaluated,
        seconds.
    """
    from sapkit.data.cases import load_case
    from sapkit.io.atomic import atomic_path
    from sapkit.data.manifest import Manifest, load_manifest
    from sapkit.io.output_paths import OutputPlan
    from sapkit.io.run_paths import PredictionDir

    man = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    plan = OutputPlan("predict_manifest")
    declare_outputs(plan, checkpoint, man, out_dir, threshold=threshold, scan_ids=scan_ids,
                    skeleton_checkpoint=skeleton_checkpoint, flag="out_dir")
    plan.check()
    dev = resolve_device(device if device is not None else config.device)
    model = load_model(checkpoint, config.model, out_channels=2)
    skel_model = None if skeleton_checkpoint is None else load_model(skeleton_checkpoint, config.model, out_channels=10)
    ids = list(man.scans["scan_id"]) if scan_ids is None else list(scan_ids)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    iterator: Iterable[str] = ids
    if progress:
        iterator = progress_bar(ids, desc="predict", unit="scan")
    rows = []
    for scan_id in iterator:
        t0 = time.perf_counter()
        if cases is not None and scan_id in cases:
            case = cases[scan_id]
        else:
            case = load_case(man, scan_id, percentiles=tuple(config.preprocess.clip_percentiles))
        row = _predict_scan(case, model, skel_model, out, config=config, device=dev, threshold=threshold,
                            min_volume_ml=min_volume_ml)
        rows.append({**row, "seconds": round(time.perf_counter() - t0, 3)})
    summary = pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)
    table_path = PredictionDir(out).summary_csv
    merged = summary
    if table_path.is_file():  # several folds predict into one folder: keep the other scans' rows
        previous = pd.read_csv(table_path, dtype={"scan_id": str}, keep_default_na=False)
        previous = previous[~previous["scan_id"].isin(summary["scan_id"])]
        merged = pd.concat([previous, summary], ignore_index=True).sort_values("scan_id", kind="stable")
    with atomic_path(table_path) as tmp:
        merged.to_csv(tmp, index=False)
    return summary


# ----------------------------------------------------------------------------------------------
def _predict_scan(case: Any, model: nn.Module, skel_model: nn.Module | None, out: Path, *, config: Config,
                  device: torch.device, threshold: float | None, min_volume_ml: float) -> dict[str, Any]:
    """Infer one scan and write its files; returns its ``predictions.csv`` row (without seconds)."""
    from sapkit.io.atomic import atomic_path
    from sapkit.io.nifti import save_nifti
    from sapkit.io.run_paths import PredictionDir

    files = PredictionDir(out)
    inf = config.infer
    masked = inf.skip_background or inf.crop_to_body
    options = dict(roi=inf.roi, overlap=inf.overlap, blend=inf.blend, sw_batch_size=inf.sw_batch_size,
                   skip_background=inf.skip_background, crop_to_body=inf.crop_to_body, tta_flip=inf.tta_flip,
                   device=device, amp=inf.amp, amp_dtype=inf.amp_dtype)
    body = body_mask(case.image) if masked else np.ones(case.shape, bool)
    windows = count_windows(body, roi=inf.roi, overlap=inf.overlap, crop_to_body=inf.crop_to_body)
    prob = lesion_probability(model, case.image, body=body if masked else None, **options)
    prob, prob_path = _save_probability(prob, case.affine, files.probability_map(case.scan_id), header=case.header,
                                        dtype=inf.prob_dtype)
    row = {"scan_id": case.scan_id, "prob_path": str(prob_path), "mask_path": "", "lesions_path": "",
           "n_lesions": -1, "n_windows": windows.n_total,
           "n_windows_evaluated": windows.n_evaluated if masked else windows.n_total}
    if threshold is None:
        return row
    skeleton = case.skeleton
    if skeleton is None and skel_model is not None:
        skeleton = skeleton_labels(predict_probabilities(skel_model, case.image, body=body, **options))
    components, table = lesion_components(prob, threshold=threshold, spacing_mm=case.spacing_mm,
                                          min_volume_ml=min_volume_ml, connectivity=config.eval.connectivity,
                                          skeleton=skeleton, scan_id=case.scan_id)
    row["mask_path"] = str(save_nifti((components > 0).astype(np.uint8), case.affine,
                                      files.mask(case.scan_id), header=case.header, dtype=np.uint8))
    lesions_path = files.lesion_table(case.scan_id)
    with atomic_path(lesions_path) as tmp:
        table.to_csv(tmp, index=False)
    row["lesions_path"], row["n_lesions"] = str(lesions_path), len(table)
    return row


def _save_probability(prob: npt.NDArray[np.float32], affine: npt.NDArray, path: Path, *, header: Any,
                      dtype: str) -> tuple[npt.NDArray[np.float32], Path]:
    """Write a probability map; ``float16`` → uint16 with slope 1/65535. Returns (stored values, path)."""
    from sapkit.io.nifti import save_nifti

    if dtype == "float32":
        return prob, save_nifti(prob, affine, path, header=header, dtype=np.float32)
    if dtype != "float16":
        raise ConfigError(f"infer.prob_dtype must be float16 or float32, got {dtype!r}")
    slope = np.float32(1.0 / 65535.0)
    quantised = np.round(np.clip(prob, 0.0, 1.0) * 65535.0).astype(np.uint16)
    save_nifti(quantised, affine, path, header=header, dtype=np.uint16, slope=float(slope))
    return (quantised.astype(np.float32) * slope).astype(np.float32), path



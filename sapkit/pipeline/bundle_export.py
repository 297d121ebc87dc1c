"""Export a trained lesion model as a MONAI bundle (``sapkit export``).

The bundle runs with MONAI, PyTorch, nibabel and scipy only (plus ``fire``, which MONAI's command
line needs) — no sapkit, no pytorch-ignite::

    BUNDLE/
      LICENSE                  the licence of the weights and of the sapkit code in the bundle
      configs/metadata.json    inputs (2 channels, their order), intensity scaling, training spacing,
                               label map, tuned threshold, post-processing, versions; MONAI's required keys
      configs/inference.json   load → channels first → percentile scaling → sliding window → softmax
                               → lesion channel → sapkit's post-processing → <name>_prob.nii.gz, <name>_mask.nii.gz
      models/model.pt          the network's state dict (weights only)
      scripts/sapkit_postprocess.py   body mask, stored map, threshold (sapkit.pipeline.bundle_postprocess)
      docs/README.md           the model card and how to run the bundle
      inputs/<scan_id>.nii.gz  only the scans asked for (``--inputs MANIFEST --scans …``)

Run it on a folder of two-channel NIfTI volumes (4D, ``X × Y × Z × 2``: channel 0 = T1,
1 = DWI b1000 on the T1 grid; :func:`stack_channels` writes them from a manifest)::

    python -m monai.bundle run --config_file BUNDLE/configs/inference.json --bundle_root BUNDLE \\
        --dataset_dir INPUTS --output_dir OUT

Its probability maps equal ``sapkit predict``'s (same scaling, channel order, window grid and
blending; within 1e-5 inside the body, 0 outside it), and with a threshold its ``<name>_mask.nii.gz``
is ``sapkit predict --threshold``'s mask voxel for voxel. Flip test-time augmentation and
``crop_to_body`` are not exported; on CUDA the bundle runs in float32 (``sapkit predict -p infer.amp=false``).

The bundle is written whole or not at all: it is built in a hidden folder next to ``--out``
(:attr:`sapkit.io.folders.BundleDir.staging`, which also holds the export's writer lock) and
renamed into place; a failure (a full disk) leaves ``--out`` as it was and removes the staging folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from sapkit.errors import CheckpointError, ConfigError, SapkitError
from sapkit.io.atomic import atomic_path, atomic_write_text
from sapkit.io.folders import BundleDir
from sapkit.pipeline import bundle_postprocess
from sapkit.pipeline.bundle_config import (BUNDLE_SCHEMA_URL, CHANNELS, REQUIRED_METADATA_KEYS, REQUIRED_TENSOR_KEYS,
                                           inference_config, license_text, metadata, network_config, readme)

__all__ = ["BUNDLE_SCHEMA_URL", "REQUIRED_METADATA_KEYS", "REQUIRED_TENSOR_KEYS", "CHANNELS", "HELD_OUT",
           "BundleDir", "export_bundle", "inference_config", "network_config", "select_scans", "stack_channels"]

#: ``--scans held-out``: the scans of the exported model's held-out fold.
HELD_OUT = "held-out"
_OLD_FILES = {"docs/license.txt", ".sapkit.lock", ".sapkit.lock.json"}  # what earlier exports left


def select_scans(run_dir: str | Path, manifest: Any, scans: Sequence[str] | None, fold: str | int) -> list[str]:
    """The scan ids of ``manifest`` that ``scans`` names: ids, or ``["held-out"]`` (fold ``fold``'s held-out subjects).

    Raises
    ------
    ConfigError
        No scans named (a bundle must not hold every scan by default), unknown ids, or an empty selection.
    """
    from sapkit.data.splits import fold_subjects, load_splits

    ids = [str(s) for s in manifest.scans["scan_id"]]
    where = manifest.csv_path or manifest.path
    if not scans:
        raise ConfigError(f"name the scans of {where} to copy into the bundle: --scans ID [ID ...], or --scans "
                          f"{HELD_OUT} for the scans of fold {fold}'s held-out patients (a bundle is shared; it holds "
                          "only the scans asked for)")
    if list(scans) == [HELD_OUT]:
        subjects = set(map(str, fold_subjects(load_splits(run_dir), fold)))
        chosen = [s for s, subj in zip(ids, manifest.scans["subject_id"].astype(str)) if subj in subjects]
        if not chosen:
            raise ConfigError(f"no scan of {where} belongs to fold {fold}'s held-out subjects {sorted(subjects)}; "
                              "pass the manifest the run was trained on, or name scans with --scans ID ...")
        return chosen
    unknown = [s for s in scans if s not in set(ids)]
    if unknown:
        raise ConfigError(f"--scans {unknown} are not scan ids of {where} (it has {len(ids)}: {ids[:4]}"
                          f"{' …' if len(ids) > 4 else ''}); check the ids, or use --scans {HELD_OUT}")
    return list(dict.fromkeys(scans))


def stack_channels(manifest: Any, out_dir: str | Path, scan_ids: Sequence[str] | None = None) -> list[Path]:
    """Write ``<scan_id>.nii.gz`` 4D files (T1, b1000 as the 4th dimension) — the bundle's inputs.

    Parameters
    ----------
    manifest : str, Path or sapkit.data.manifest.Manifest
        Scans to convert (``manifest.yaml`` or its folder).
    out_dir : str or Path
        Output folder (created).
    scan_ids : sequence of str, optional
        Subset (default: all scans; ``sapkit export --inputs`` always names them, :func:`select_scans`).

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


def _check_replaceable(bundle: BundleDir) -> None:
    """``--out`` is new, empty, or a sapkit bundle (replaced whole); anything else in it would be lost: refused."""
    out = bundle.path
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for the bundle")
    if not out.is_dir():
        return
    own = {p.relative_to(out).as_posix() for p in bundle.files()} | _OLD_FILES
    extra = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_symlink() or not p.is_dir() and not (rel in own or "__pycache__/" in rel or (
                rel.startswith("inputs/") and rel.count("/") == 1 and rel.endswith((".nii.gz", ".nii")))):
            extra.append(rel)
    if extra:
        raise ConfigError(f"--out {out} holds {len(extra)} file(s) that are not part of a sapkit bundle ({extra[:3]}"
                          f"{' …' if len(extra) > 3 else ''}); the export replaces the bundle folder whole — move them "
                          "away or choose another --out")


@contextlib.contextmanager
def _staged(bundle: BundleDir) -> Iterator[BundleDir]:
    """Yield a bundle folder to fill in ``bundle.staging`` (locked); on success rename it onto ``bundle.path``."""
    from sapkit.io.run_lock import RunLock, RunLockedError

    root = bundle.staging
    existed = root.exists()
    try:
        lock = RunLock(root, what="--out").acquire()  # another export of this bundle: RunLockedError
    except RunLockedError:
        raise
    except BaseException:
        if not existed:
            _remove_staging(root)
        raise
    build, previous = BundleDir(root / "bundle"), root / "previous"
    try:
        for leftover in (build.path, previous):  # of an export that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            yield build
        except SapkitError as exc:  # name the file the user will look for, not its staging copy
            exc.args = (str(exc).replace(str(build.path), str(bundle.path)),)
            raise
        if bundle.path.exists():
            os.rename(bundle.path, previous)
        try:
            os.rename(build.path, bundle.path)
        except OSError:
            if previous.exists():
                os.rename(previous, bundle.path)  # the previous bundle, back as it was
            raise
    finally:
        shutil.rmtree(build.path, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
        lock.release()
        _remove_staging(root)


def _remove_staging(root: Path) -> None:
    """The staging folder's lock files, and the folder when nothing else is left in it."""
    for name in (".sapkit.lock", ".sapkit.lock.json"):
        (root / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        root.rmdir()


def _tuned_threshold(rd: Any, init: str) -> float | None:
    if not rd.threshold_json.is_file():
        return None
    entry = json.loads(rd.threshold_json.read_text()).get(init)
    return float(entry["threshold"]) if isinstance(entry, dict) and "threshold" in entry else None


def export_bundle(run_dir: str | Path, *, init: str, fold: str | int, out: str | Path, which: str = "final",
                  overrides: Mapping[str, Any] | None = None, authors: str = "sapkit user",
                  license_name: str = "MIT (sapkit code); the weights inherit the terms of their training data",
                  version: str | None = None, threshold: float | None = None, min_volume_ml: float = 0.0,
                  inputs: Any = None, scans: Sequence[str] | None = None) -> Path:
    """Write the MONAI bundle of ``run_dir``'s lesion model ``init`` × ``fold`` into ``out``.

    Parameters
    ----------
    run_dir : str or Path
        A run folder with ``config.yaml`` and ``lesion/<init>/fold_<fold>/model_<which>.pt``.
    init : {"scratch", "ssl", "sap"}
    fold : str or int
        Test fold id or ``tune``.
    out : str or Path
        Bundle folder: new, empty, or an earlier bundle (replaced whole; a folder holding other files is refused).
    which : {"final", "best"}
        Checkpoint.
    overrides : mapping, optional
        Config overrides on top of the run's ``config.yaml`` (``{"infer.overlap": 0.5}``).
    authors, license_name, version : str
        Metadata; ``version`` defaults to the sapkit version.
    threshold : float, optional
        Threshold of the bundle's lesion mask (default: the run's tuned one in ``eval/threshold.json``;
        with neither, the bundle writes probability maps only).
    min_volume_ml : float
        Lesions below this volume are dropped from the mask (``sapkit predict --min-volume-ml``).
    inputs : str, Path or Manifest, optional
        Also write these scans as two-channel volumes into ``inputs/``; ``scans`` must name them.
    scans : sequence of str, optional
        Scan ids of ``inputs``, or ``["held-out"]`` (:func:`select_scans`).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        No ``config.yaml``, inference settings the bundle cannot reproduce, a bad threshold or scan selection.
    CheckpointError
        Missing or unsafe checkpoint, or one that is not a lesion model.
    SapkitError
        A file could not be written (a full disk names it); ``out`` is then left as it was.
    """
    from sapkit import __version__
    from sapkit.config import load_config
    from sapkit.data.manifest import Manifest, load_manifest
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
    source = "--threshold" if threshold is not None else f"eval/threshold.json ({init}, tuned on the tuning fold)"
    threshold = threshold if threshold is not None else _tuned_threshold(rd, init)
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise ConfigError(f"--threshold must be in (0, 1], got {threshold!r}; e.g. the tuned one in eval/threshold.json")
    if not min_volume_ml >= 0:
        raise ConfigError(f"--min-volume-ml must be >= 0 mL, got {min_volume_ml!r}")
    infer_json = inference_config(config, model_config, threshold=threshold, min_volume_ml=min_volume_ml)
    spacing = None
    if rd.fingerprint_json.is_file():
        spacing = json.loads(rd.fingerprint_json.read_text()).get("dataset", {}).get("median_spacing_mm")
    meta = metadata(config, model_config, init=init, fold=str(fold), which=which, epoch=int(payload.get("epoch", 0)),
                    run_name=rd.path.resolve().name, spacing=spacing, threshold=threshold,
                    threshold_source=source if threshold is not None else "none", min_volume_ml=min_volume_ml,
                    authors=authors, license_name=license_name, version=version or __version__)
    card = md.model_card.read_text() if md.model_card.is_file() else f"# sapkit lesion model ({init}, fold {fold})\n"
    man, ids = None, []
    if inputs is not None:
        man = inputs if isinstance(inputs, Manifest) else load_manifest(inputs)
        ids = select_scans(rd.path, man, scans, fold)
    bundle = BundleDir(Path(out))
    _check_replaceable(bundle)
    with _staged(bundle) as build:
        atomic_write_text(build.license, license_text(license_name, authors))
        atomic_write_text(build.metadata_json, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(build.inference_json, json.dumps(infer_json, indent=2) + "\n")
        with atomic_path(build.model_pt) as tmp:
            torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
        atomic_write_text(build.scripts_init, '"""Code of this MONAI bundle (imported by configs/inference.json)."""\n')
        atomic_write_text(build.postprocess_py, Path(bundle_postprocess.__file__).read_text(encoding="utf-8"))
        atomic_write_text(build.readme, readme(card, bundle_name=bundle.path.name, threshold=threshold,
                                               body=bool(config.infer.skip_background)))
        if man is not None:
            stack_channels(man, build.inputs, ids)
        _check_bundle_network(build, model)
    return bundle.path

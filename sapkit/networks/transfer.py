"""Weight transfer from a pretrained model into a lesion model, with a visible report.

``init`` is one of:

- ``scratch`` — random initialisation, nothing loaded.
- ``sap`` — Supervised Anatomical Pretraining: every tensor of the skeleton model except the
  output head (encoder **and** decoder); the head is re-created for the new class count.
- ``ssl`` — only what self-supervised pretraining trained: ``swinViT`` for SwinUNETR, the
  encoder stages for the CNN backbones; the rest stays random.

The transfer report has one row per tensor of the receiving model (status ``loaded``,
``skipped-by-rule``, ``shape-mismatch`` or ``missing-in-source``) plus one row per source tensor
the model does not have (``not-in-target``, e.g. SSL heads). Nothing loaded, or a mismatch or
missing tensor in a part that should transfer, raises :class:`~sapkit.errors.CheckpointError` —
never a silent ``strict=False`` (docs/method.md §9).

Learning rates are discriminative (docs/method.md §4.2): the encoder group (``swinViT`` + ``encoder1–4`` +
``encoder10``, or the CNN encoder stages) and the decoder group (decoder + head).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from sapkit.config import Init
from sapkit.io.checkpoints import ImportedWeights, import_weights
from sapkit.errors import CheckpointError, ConfigError
from sapkit.io.atomic import atomic_write_text
from sapkit.networks.factory import model_parts, part_of_tensors, ssl_modules, unwrap

__all__ = [
    "INITS",
    "REPORT_COLUMNS",
    "transfer_weights",
    "save_transfer_report",
    "lesion_param_groups",
    "param_groups",
]

INITS: tuple[str, ...] = typing.get_args(Init)  # the choices of lesion.inits
REPORT_COLUMNS = ["tensor", "part", "shape", "source_shape", "source_name", "status"]


def _ssl_keys(model: nn.Module) -> set[str]:
    ids = {id(t) for m in ssl_modules(model) for t in list(m.parameters()) + list(m.buffers())}
    return {k for k, t in model.state_dict(keep_vars=True).items() if id(t) in ids}


def transfer_weights(
    model: nn.Module,
    source: str | Path | dict[str, Any] | ImportedWeights,
    *,
    init: str,
) -> pd.DataFrame:
    """Copy pretrained tensors into ``model`` by the rule of ``init`` and report each tensor.

    Parameters
    ----------
    model : torch.nn.Module
        Receiving network from :func:`sapkit.networks.factory.build_model` (its head sized for the new task).
    source : str, Path, mapping or ImportedWeights
        Checkpoint file (any layout of :func:`sapkit.io.checkpoints.import_weights`) or loaded weights.
    init : {"sap", "ssl"}
        Transfer rule.

    Returns
    -------
    pandas.DataFrame
        Columns ``tensor, part, shape, source_shape, source_name, status``; ``attrs`` holds
        ``remaps``, ``layout``, ``source`` and ``n_loaded``.

    Raises
    ------
    CheckpointError
        Nothing loaded; or a tensor the rule should transfer is missing or has another shape.
    ConfigError
        ``init`` is not ``sap`` or ``ssl``.
    """
    if init not in ("sap", "ssl"):
        raise ConfigError(f"transfer needs init 'sap' or 'ssl', got {init!r} (scratch loads nothing)")
    model = unwrap(model)
    target = model.state_dict()
    weights = source if isinstance(source, ImportedWeights) else import_weights(source, target_keys=set(target))
    parts = part_of_tensors(model)
    wanted = {k for k, p in parts.items() if p != "head"} if init == "sap" else _ssl_keys(model)
    rows: list[dict[str, Any]] = []
    new_state: dict[str, torch.Tensor] = {}
    for key, tensor in target.items():
        src = weights.state_dict.get(key)
        row = {"tensor": key, "part": parts[key], "shape": tuple(tensor.shape),
               "source_shape": tuple(src.shape) if src is not None else None,
               "source_name": weights.source_keys.get(key, "")}
        if key not in wanted:
            row["status"] = "skipped-by-rule"
        elif src is None:
            row["status"] = "missing-in-source"
        elif tuple(src.shape) != tuple(tensor.shape):
            row["status"] = "shape-mismatch"
        else:
            row["status"] = "loaded"
            new_state[key] = src.to(dtype=tensor.dtype)
        rows.append(row)
    for key in sorted(set(weights.state_dict) - set(target)):
        rows.append({"tensor": key, "part": "", "shape": None, "source_shape": tuple(weights.state_dict[key].shape),
                     "source_name": weights.source_keys.get(key, ""), "status": "not-in-target"})
    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    report.attrs.update(remaps=list(weights.remaps), layout=weights.layout,
                        source=str(weights.path) if weights.path else "<object>", n_loaded=len(new_state))
    where = weights.path or "the given weights"
    bad = report[report["status"].isin(["missing-in-source", "shape-mismatch"])]
    if not new_state:
        raise CheckpointError(
            f"{init} transfer from {where} loaded no tensor: none of the {len(wanted)} tensors the rule wants "
            f"matched (remaps tried: {list(weights.remaps) or 'none'}); check the backbone in the profile "
            "matches the pretrained model"
        )
    if len(bad):
        listing = ", ".join(f"{r.tensor} ({r.status}: model {r.shape}, file {r.source_shape})" for r in bad.head(5).itertuples())
        raise CheckpointError(
            f"{init} transfer from {where}: {len(bad)} tensor(s) that should transfer do not fit, e.g. {listing}; "
            "the pretrained model must have the same backbone and sizes (model.* config) as the new one"
        )
    with torch.no_grad():
        for key, value in new_state.items():
            target[key].copy_(value)
    model.load_state_dict(target, strict=True)
    return report


def save_transfer_report(report: pd.DataFrame, path: str | Path) -> Path:
    """Write the transfer report as a plain CSV atomically.

    Three columns are appended from ``report.attrs`` (same value on every row): ``source`` (file),
    ``layout`` and ``remaps`` (``;``-joined, ``none`` when no key was renamed).
    """
    table = report.assign(source=report.attrs.get("source", ""), layout=report.attrs.get("layout", ""),
                          remaps=";".join(report.attrs.get("remaps", [])) or "none")
    return atomic_write_text(Path(path), table.to_csv(index=False))


def param_groups(model: nn.Module, *, lr_encoder: float, lr_decoder: float) -> list[dict[str, Any]]:
    """Two optimiser parameter groups: ``encoder`` and ``decoder`` (decoder + head).

    Returns
    -------
    list of dict
        ``[{"name": "encoder", "params": [...], "lr": lr_encoder}, {"name": "decoder", ...}]``.
    """
    parts = model_parts(unwrap(model))
    enc = [p for m in parts["encoder"] for p in m.parameters()]
    dec = [p for m in parts["decoder"] + parts["head"] for p in m.parameters()]
    return [{"name": "encoder", "params": enc, "lr": float(lr_encoder)},
            {"name": "decoder", "params": dec, "lr": float(lr_decoder)}]


def lesion_param_groups(model: nn.Module, *, init: str, lesion_config: Any) -> list[dict[str, Any]]:
    """Discriminative learning rates of docs/method.md §4.2 from ``config.lesion``.

    ``scratch``: ``lr_scratch`` everywhere; ``sap``: ``lr_encoder_sap`` / ``lr_decoder_sap``;
    ``ssl``: ``lr_encoder_ssl`` / ``lr_decoder_ssl``.
    """
    if init == "scratch":
        lr = lesion_config.lr_scratch
        return param_groups(model, lr_encoder=lr, lr_decoder=lr)
    if init == "sap":
        return param_groups(model, lr_encoder=lesion_config.lr_encoder_sap, lr_decoder=lesion_config.lr_decoder_sap)
    if init == "ssl":
        return param_groups(model, lr_encoder=lesion_config.lr_encoder_ssl, lr_decoder=lesion_config.lr_decoder_ssl)
    raise ConfigError(f"init must be one of {INITS}, got {init!r}")

"""Weight transfer from a pretrained model into a lesion model, with a visible report.

``init`` is one of:

- ``scratch`` — random initialisation, nothing loaded.
- ``sap`` — Supervised Anatomical Pretraining: every tensor of the skeleton model except the
  output head (encoder **and** decoder); the head is re-created for the new class count.
- ``ssl`` — only what self-supervised pretraining trained: ``swinViT`` for SwinUNETR, the
  encoder stages for the CNN backbones; the rest stays random.

The transfer report has one row per tensor of the receiving model (status ``loaded``,
``inflated``, ``skipped-by-rule``, ``shape-mismatch`` or ``missing-in-source``, with its source
key and a ``reason``) plus one row per source tensor the model does not have (``not-in-target``,
e.g. SSL heads).

Tang et al.'s released SSL checkpoint (``{"state_dict": {"module.patch_embed.proj.weight", …,
"module.layers1.0.blocks.0.mlp.fc1.weight", …}}``, one input channel) is read as follows:
``module.`` is stripped and the bare Swin keys move under ``swinViT.``
(:func:`sapkit.io.checkpoints.remap_state_dict`), ``mlp.fc1``/``mlp.fc2`` become MONAI's
``mlp.linear1``/``mlp.linear2``, and an input-layer weight stored for **1** channel is *inflated*
to the model's C input channels: ``w_C[:, c] = w_1[:, 0] / C`` for every channel c. The input
layer is linear in its input, so a C-channel image whose channels are all equal to a 1-channel
image gives exactly the activations the 1-channel network gave (docs/method.md §9). Nothing loaded, or a mismatch or
missing tensor in a part that should transfer, raises :class:`~sapkit.errors.CheckpointError` —
never a silent ``strict=False`` (docs/method.md §9).

Learning rates are discriminative (docs/method.md §4.2): the encoder group (``swinViT`` + ``encoder1–4`` +
``encoder10``, or the CNN encoder stages) and the decoder group (decoder + head).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from sapkit.config import Init, LesionConfig
from sapkit.io.checkpoints import ImportedWeights, import_weights
from sapkit.errors import CheckpointError, ConfigError
from sapkit.io.atomic import atomic_write_text
from sapkit.networks.factory import model_parts, part_of_tensors, ssl_modules, unwrap

__all__ = [
    "INITS",
    "REPORT_COLUMNS",
    "transfer_weights",
    "zero_head",
    "inflate_input_weight",
    "save_transfer_report",
    "lesion_param_groups",
    "param_groups",
]

INITS: tuple[str, ...] = typing.get_args(Init)  # the choices of lesion.inits
REPORT_COLUMNS = ["tensor", "part", "shape", "source_shape", "source_name", "status", "reason"]
_MLP_NAMES = ((".mlp.fc1.", ".mlp.linear1."), (".mlp.fc2.", ".mlp.linear2."))


def _ssl_keys(model: nn.Module) -> set[str]:
    ids = {id(t) for m in ssl_modules(model) for t in list(m.parameters()) + list(m.buffers())}
    return {k for k, t in model.state_dict(keep_vars=True).items() if id(t) in ids}


def _tang_mlp_names(weights: ImportedWeights, target_keys: set[str]) -> ImportedWeights:
    """Rename Tang et al.'s Swin MLP (``mlp.fc1``/``mlp.fc2``) to MONAI's (``mlp.linear1``/``mlp.linear2``)."""
    if not any(a in k for k in weights.state_dict for a, _ in _MLP_NAMES):
        return weights
    if not any(b in k for k in target_keys for _, b in _MLP_NAMES):
        return weights

    def rename(key: str) -> str:
        for a, b in _MLP_NAMES:
            key = key.replace(a, b)
        return key

    state = {rename(k): v for k, v in weights.state_dict.items()}
    if len(state) != len(weights.state_dict):
        raise CheckpointError(f"checkpoint {weights.path or '<object>'} holds both 'mlp.fc1' and 'mlp.linear1' names "
                              "for one tensor; it is ambiguous — keep one naming")
    return dataclasses.replace(weights, state_dict=state,
                               source_keys={rename(k): v for k, v in weights.source_keys.items()},
                               remaps=(*weights.remaps, "'mlp.fc1/fc2' -> 'mlp.linear1/linear2'"))


def _input_channels(model: nn.Module) -> int:
    """Input channels of the network: dim 1 of its first convolution weight (5-D tensor)."""
    for tensor in model.state_dict().values():
        if tensor.ndim == 5:
            return int(tensor.shape[1])
    return 0


def inflate_input_weight(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Spread a 1-input-channel convolution weight over ``channels`` inputs: copy into each, divide by ``channels``.

    ``conv(x_C, w_C) = conv(x_1, w_1)`` when every channel of ``x_C`` equals ``x_1`` (the
    convolution is linear in its input channels), so the inflated layer starts where the 1-channel
    one was.

    Parameters
    ----------
    weight : (out, 1, *kernel) tensor
    channels : int
        Input channels of the receiving layer (>= 1).

    Returns
    -------
    (out, channels, *kernel) tensor

    Examples
    --------
    >>> w = torch.arange(4.0).reshape(2, 1, 2)
    >>> inflate_input_weight(w, 2)[:, :, 0].tolist()
    [[0.0, 0.0], [1.0, 1.0]]
    """
    if weight.ndim < 3 or weight.shape[1] != 1 or channels < 1:
        raise CheckpointError(f"only a convolution weight with 1 input channel can be inflated, got shape "
                              f"{tuple(weight.shape)} for {channels} channels")
    return weight.repeat(1, channels, *([1] * (weight.ndim - 2))) / channels


def _rule_reason(init: str, part: str) -> str:
    if init == "sap":
        return "output head: re-created for the new classes"
    return f"{part}: not trained by SSL (ssl copies only what the pretext tasks trained)"


def zero_head(model: nn.Module) -> int:
    """Set every parameter of the output head (:func:`sapkit.networks.factory.model_parts`) to 0.

    After a transfer the head is the only newly created part; zero weights and bias give logits 0 for
    every class at the start (softmax ½ per voxel for two classes), so the first steps move the head
    from the transferred features instead of from a random projection of them. Returns the number of
    parameters set.
    """
    n = 0
    with torch.no_grad():
        for module in model_parts(model)["head"]:
            for p in module.parameters():
                p.zero_()
                n += p.numel()
    return n


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
        Checkpoint file (any layout of :func:`sapkit.io.checkpoints.import_weights`, Tang et al.'s
        released SSL layout included) or loaded weights.
    init : {"sap", "ssl"}
        Transfer rule.

    Returns
    -------
    pandas.DataFrame
        Columns ``tensor`` (target key), ``part``, ``shape``, ``source_shape``, ``source_name``
        (key in the file), ``status`` (``loaded`` = copied, ``inflated`` = 1-channel input layer
        spread over the model's channels, ``skipped-by-rule``, ``not-in-target``, …) and
        ``reason`` (why a tensor was inflated or skipped; empty when copied); ``attrs`` holds
        ``remaps``, ``layout``, ``source`` and ``n_loaded`` (copied + inflated).

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
    weights = _tang_mlp_names(weights, set(target))
    parts = part_of_tensors(model)
    wanted = {k for k, p in parts.items() if p != "head"} if init == "sap" else _ssl_keys(model)
    in_channels = _input_channels(model)
    rows: list[dict[str, Any]] = []
    new_state: dict[str, torch.Tensor] = {}
    for key, tensor in target.items():
        src = weights.state_dict.get(key)
        row = {"tensor": key, "part": parts[key], "shape": tuple(tensor.shape),
               "source_shape": tuple(src.shape) if src is not None else None,
               "source_name": weights.source_keys.get(key, ""), "reason": ""}
        if key not in wanted:
            row["status"], row["reason"] = "skipped-by-rule", _rule_reason(init, parts[key])
        elif src is None:
            row["status"], row["reason"] = "missing-in-source", "the rule transfers it but the file lacks it"
        elif tuple(src.shape) == tuple(tensor.shape):
            row["status"] = "loaded"
            new_state[key] = src.to(dtype=tensor.dtype)
        elif (src.ndim == tensor.ndim >= 3 and src.shape[1] == 1 and tensor.shape[1] == in_channels > 1
              and src.shape[0] == tensor.shape[0] and src.shape[2:] == tensor.shape[2:]):
            row["status"] = "inflated"
            row["reason"] = f"1 -> {in_channels} input channels: copied into each channel, divided by {in_channels}"
            new_state[key] = inflate_input_weight(src, in_channels).to(dtype=tensor.dtype)
        else:
            row["status"], row["reason"] = "shape-mismatch", "another shape in the file"
        rows.append(row)
    for key in sorted(set(weights.state_dict) - set(target)):
        rows.append({"tensor": key, "part": "", "shape": None, "source_shape": tuple(weights.state_dict[key].shape),
                     "source_name": weights.source_keys.get(key, ""), "status": "not-in-target",
                     "reason": "the receiving model has no tensor of this name"})
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
        listing = ", ".join(f"{r.tensor} ({r.status}: model {r.shape}, file {r.source_shape}"
                            f"{' as ' + r.source_name if r.source_name and r.source_name != r.tensor else ''})"
                            for r in bad.head(5).itertuples())
        raise CheckpointError(
            f"{init} transfer from {where}: {len(bad)} of the {len(wanted)} tensor(s) that should transfer do not fit "
            f"({len(new_state)} did), e.g. {listing}; the pretrained model must have the sizes of the model.* "
            "settings (feature_size, depths, num_heads, channels) — set them to the pretrained model's"
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


def lesion_param_groups(model: nn.Module, *, init: str, lesion_config: LesionConfig) -> list[dict[str, Any]]:
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

"""Checkpoints: atomic save, safe load (``weights_only=True`` only) and import of foreign layouts.

A sapkit checkpoint is a dict of plain containers and tensors, so it loads with
``torch.load(..., weights_only=True)``::

    {"format": "sapkit-checkpoint-1", "state_dict": {...}, "epoch": int,
     "optimizer": {...} | None, "scheduler": {...} | None, "scaler": {...} | None,
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...]} , "config": {...},
     "versions": {...}, "extra": {...}}

:func:`import_weights` reads what other code wrote: a bare ``state_dict``, the authors' layout
``{"state_dict": ..., "epoch": ...}``, ``module.`` (DataParallel/DDP) and ``backbone.`` prefixes,
and Tang et al.'s Swin naming (``swin_vit.`` or bare ``patch_embed.``/``layers1.`` keys →
``swinViT.``). It says which remaps it applied.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from sapkit import __version__
from sapkit._config_loader import build, to_plain_dict
from sapkit.config import ModelConfig
from sapkit.errors import CheckpointError, ConfigError
from sapkit.io.atomic import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "ImportedWeights",
    "save_checkpoint",
    "load_checkpoint",
    "stored_model_config",
    "import_weights",
    "remap_state_dict",
]

CHECKPOINT_FORMAT = "sapkit-checkpoint-1"
_SWIN_ROOTS = ("patch_embed.", "layers1.", "layers2.", "layers3.", "layers4.", "pos_drop.")


def _versions() -> dict[str, str]:
    import monai

    return {"sapkit": str(__version__), "torch": str(torch.__version__), "monai": str(monai.__version__)}


def save_checkpoint(
    path: str | Path,
    *,
    state_dict: Mapping[str, torch.Tensor],
    epoch: int,
    optimizer: Mapping[str, Any] | None = None,
    scheduler: Mapping[str, Any] | None = None,
    scaler: Mapping[str, Any] | None = None,
    rng: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file + rename).

    Parameters
    ----------
    path : str or Path
        Destination ``.pt`` file; its folder is created.
    state_dict : mapping of str to tensor
        Model weights (unwrapped: no ``module.`` prefix).
    epoch : int
        Number of completed epochs.
    optimizer, scheduler, scaler : mapping, optional
        Their ``state_dict()``.
    rng : mapping, optional
        Random states as tensors/lists (e.g. ``{"torch": torch.get_rng_state()}``).
    config : mapping, optional
        The resolved configuration as a plain dict.
    extra : mapping, optional
        Any other plain values (best metric, task name ...).

    Returns
    -------
    Path
        ``path``.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "epoch": int(epoch),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "rng": dict(rng or {}),
        "config": dict(config or {}),
        "versions": _versions(),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> Any:
    """Load any ``.pt`` file safely with ``torch.load(weights_only=True)``.

    Raises
    ------
    CheckpointError
        The file is missing, is not a torch file, or holds anything other than tensors and
        plain containers (e.g. a pickled callable) — such a file is refused, never executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train the model first or pass the right path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError, EOFError, KeyError,
            IndexError, OSError) as exc:
        text = str(exc)
        code = re.search(r"GLOBAL ([\w.]+)", text)
        if code is not None:
            raise CheckpointError(
                f"refused to load checkpoint {path}: it holds pickled code or objects (GLOBAL {code.group(1)}), "
                "not only tensors, so it does not load with weights_only=True (sapkit never executes pickled "
                "code); re-save only its state_dict (tensors) from trusted code"
            ) from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        first = next((ln for ln in lines if ln.startswith("Unsupported")), lines[0] if lines else "")
        raise CheckpointError(
            f"refused to load checkpoint {path}: it is not a readable torch checkpoint ({type(exc).__name__}"
            f"{': ' + first[:200] if first else ''}); it may be truncated or another kind of file — check the path, or re-save it "
            "with torch.save(model.state_dict(), path)"
        ) from None


def stored_model_config(payload: Any, model_config: ModelConfig, path: str | Path) -> ModelConfig:
    """``model_config`` with the ``model`` section stored in a checkpoint applied, checked like a profile's.

    The stored section wins (it describes the weights); keys this sapkit does not know are left
    out. Every value is coerced and checked by the config loader, so an edited or foreign file
    fails here, naming it, instead of deep inside the network's constructor.

    Raises
    ------
    CheckpointError
        The stored section is not a mapping, or holds a value of the wrong type, choice or range.
    """
    config = payload.get("config") if isinstance(payload, Mapping) else None
    stored = config.get("model") if isinstance(config, Mapping) else None
    if stored is None:
        return model_config
    fix = "it was not written by this sapkit version or was edited — retrain or re-save it"
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"checkpoint {path} stores a model configuration sapkit cannot build (config.model is "
                              f"a {type(stored).__name__}, not a mapping of model.* keys); {fix}")
    known = {k: v for k, v in stored.items() if k in to_plain_dict(model_config)}
    try:
        return build(ModelConfig, {**to_plain_dict(model_config), **known}, prefix="model.")
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path} stores a model configuration sapkit cannot build ({exc}); {fix}") from None


@dataclass(frozen=True)
class ImportedWeights:
    """Weights read from a checkpoint of any supported layout.

    Attributes
    ----------
    state_dict : dict of str to tensor
        Keys after remapping.
    source_keys : dict of str to str
        Remapped key → key as stored in the file.
    remaps : tuple of str
        Remaps applied, e.g. ``("strip 'module.'", "'swin_vit.' -> 'swinViT.'")``.
    layout : str
        ``sapkit``, ``state_dict-wrapper`` (``{"state_dict": ...}``) or ``bare``.
    epoch : int or None
        Epoch stored in the file, if any.
    path : Path or None
        Source file.
    """

    state_dict: dict[str, torch.Tensor]
    source_keys: dict[str, str]
    remaps: tuple[str, ...]
    layout: str
    epoch: int | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _find_state_dict(obj: Any, path: Path | None) -> tuple[dict[str, torch.Tensor], str, int | None, dict]:
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        return dict(obj["state_dict"]), "sapkit", obj.get("epoch"), dict(obj.get("extra") or {})
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                epoch = obj.get("epoch")
                return dict(inner), "state_dict-wrapper", int(epoch) if isinstance(epoch, int) else None, {}
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj), "bare", None, {}
    raise CheckpointError(
        f"checkpoint {path or '<object>'} holds no state_dict: expected a mapping of tensor names to tensors, "
        "or a dict with a 'state_dict' entry; got keys "
        f"{sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__}"
    )


def remap_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, target_keys: set[str] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str], tuple[str, ...]]:
    """Normalise foreign key names.

    Applied in order, each only when it changes something: strip ``module.`` (DDP), strip
    ``backbone.`` (wrappers such as sapkit's SSL model), ``swin_vit.`` → ``swinViT.`` (Tang et
    al.), and bare Swin keys (``patch_embed.*``, ``layers1.*`` …) → ``swinViT.*`` when the target
    has a ``swinViT`` and no such bare keys.

    Returns
    -------
    state_dict : dict
        Remapped tensors.
    source_keys : dict
        New key → original key.
    remaps : tuple of str
        Human-readable list of the remaps that applied.
    """
    keys = {k: k for k in state_dict}  # new -> original
    remaps: list[str] = []

    def apply(name: str, fn: Any) -> None:
        nonlocal keys
        new = {fn(k): orig for k, orig in keys.items()}
        if len(new) != len(keys):
            raise CheckpointError(f"remap {name} would merge two tensors into one name; the checkpoint is ambiguous")
        if set(new) != set(keys):
            remaps.append(name)
            keys = new

    for prefix in ("module.", "backbone."):
        apply(f"strip '{prefix}'", lambda k, p=prefix: k[len(p):] if k.startswith(p) else k)
    apply("'swin_vit.' -> 'swinViT.'", lambda k: "swinViT." + k[len("swin_vit."):] if k.startswith("swin_vit.") else k)
    if target_keys is not None and any(k.startswith("swinViT.") for k in target_keys):
        if not any(k.startswith(_SWIN_ROOTS) for k in target_keys):
            apply("bare Swin keys -> 'swinViT.'", lambda k: "swinViT." + k if k.startswith(_SWIN_ROOTS) else k)
    out = {new: state_dict[orig] for new, orig in keys.items()}
    return out, dict(keys), tuple(remaps)


def import_weights(source: str | Path | Mapping[str, Any], *, target_keys: set[str] | None = None) -> ImportedWeights:
    """Read weights from a file (safely) or an already-loaded object, in any supported layout.

    Parameters
    ----------
    source : str, Path or mapping
        A ``.pt`` file (loaded with ``weights_only=True``) or the loaded object.
    target_keys : set of str, optional
        ``state_dict`` keys of the receiving model, used to recognise bare Swin keys.

    Returns
    -------
    ImportedWeights

    Raises
    ------
    CheckpointError
        Unsafe file, or no state_dict inside.

    Examples
    --------
    >>> w = import_weights({"state_dict": {"module.swin_vit.x": torch.zeros(1)}, "epoch": 3})
    >>> list(w.state_dict), w.remaps, w.epoch
    (['swinViT.x'], ("strip 'module.'", "'swin_vit.' -> 'swinViT.'"), 3)
    """
    path = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        obj = load_checkpoint(path)
    else:
        obj = source
    raw, layout, epoch, extra = _find_state_dict(obj, path)
    state_dict, source_keys, remaps = remap_state_dict(raw, target_keys=target_keys)
    return ImportedWeights(state_dict=state_dict, source_keys=source_keys, remaps=remaps, layout=layout,
                           epoch=epoch, path=path, extra=extra)

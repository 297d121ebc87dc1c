"""Resuming a training run: which checkpoint to continue from, and whether the configuration allows it.

A resumed run must continue *the same* run: :func:`config_differences` lists the settings that
differ from the checkpoint's (only ``epochs`` may grow; for the lesion task also the bookkeeping
keys that choose which models exist), and :func:`load_resume_checkpoint` refuses to resume when
there are any, or when the checkpoint belongs to another task. The training loop itself is
:func:`sapkit.training.engine.fit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from sapkit.config import Config, config_to_dict
from sapkit.errors import CheckpointError, ConfigError
from sapkit.io.checkpoints import load_checkpoint
from sapkit.io.run_paths import ModelDir

__all__ = ["config_differences", "load_resume_checkpoint"]

# Task-section keys that may change on resume: more epochs, and lesion keys that choose which
# (init, fold) models exist or which checkpoint predicts, not how one model trains.
_RESUME_FREE_KEYS = ("epochs", "inits", "folds", "checkpoint")


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(stored: Mapping[str, Any], current: Config | Mapping[str, Any], *, task: str,
                       sections: Sequence[str] = ("model", "augment", "preprocess")) -> list[str]:
    """Keys whose values make a resumed ``task`` run differ from the one in the checkpoint.

    Compared: ``seed``, every key of ``sections`` and of the task's own section except
    ``epochs`` (extending a run is legitimate) and, for the lesion task, ``inits``, ``folds`` and
    ``checkpoint`` (they choose which models exist and which checkpoint predicts). Keys present in
    only one of the two configs (the schema changed between sapkit versions) are not compared.

    Parameters
    ----------
    stored : mapping
        ``checkpoint["config"]`` (nested plain dict, :func:`sapkit.config.config_to_dict`).
    current : Config or mapping
        The configuration of the resuming call.
    task : {"skeleton", "ssl", "lesion"}
        Its section is compared.
    sections : sequence of str
        Further whole sections to compare.

    Returns
    -------
    list of str
        ``"key (checkpoint A, now B)"`` per differing dotted key, sorted; empty when resumable.

    Examples
    --------
    >>> a = {"seed": 1, "model": {"backbone": "unet"}, "skeleton": {"epochs": 3, "lr": 0.1}}
    >>> config_differences(a, {**a, "seed": 2, "skeleton": {"epochs": 9, "lr": 0.2}}, task="skeleton")
    ['seed (checkpoint 1, now 2)', 'skeleton.lr (checkpoint 0.1, now 0.2)']
    """
    now = current if isinstance(current, Mapping) else config_to_dict(current)
    names = ("seed", *sections, task)
    old, new = (_flat({k: tree[k] for k in names if k in tree}) for tree in (stored, now))
    free = {f"{task}.{k}" for k in _RESUME_FREE_KEYS if k == "epochs" or task == "lesion"}
    return [f"{k} (checkpoint {old[k]!r}, now {new[k]!r})" for k in sorted(set(old) & set(new))
            if k not in free and old[k] != new[k]]


def load_resume_checkpoint(out_dir: str | Path, config: Config, device: torch.device | str, *, task: str,
                           augment_samples: bool) -> dict[str, Any] | None:
    """The checkpoint a resumed ``task`` run continues from, checked; None when there is none.

    Parameters
    ----------
    out_dir : str or Path
        Task folder (:class:`~sapkit.io.run_paths.ModelDir`): ``checkpoint_last.pt`` is used,
        else a finished ``model_final.pt``.
    config : Config
        Configuration of the resuming call, compared with the checkpoint's (:func:`config_differences`).
    device : torch.device or str
        Where the tensors are loaded.
    task : {"skeleton", "ssl", "lesion"}
        The checkpoint must be of this task.
    augment_samples : bool
        Whether the task augments (then the ``augment`` section must match too).

    Returns
    -------
    dict or None
        The checkpoint (``state_dict``, ``epoch``, ``optimizer``, ``scheduler``, ``rng``, ``config``, ``extra`` …).

    Raises
    ------
    CheckpointError
        An unsafe file, or a checkpoint of another task.
    ConfigError
        The configuration differs from the checkpoint's.
    """
    md = ModelDir(Path(out_dir))
    path = next((p for p in (md.checkpoint_last, md.model("final")) if p.is_file()), None)
    if path is None:
        return None
    ck = load_checkpoint(path, map_location=device)
    if ck.get("extra", {}).get("task") != task:
        raise CheckpointError(f"{path} is a {ck.get('extra', {}).get('task')!r} checkpoint, not {task!r}; "
                              "use another run folder or drop --resume")
    sections = ("model", "preprocess") + (("augment",) if augment_samples else ())
    diff = config_differences(ck.get("config") or {}, config, task=task, sections=sections)
    if diff:
        raise ConfigError(
            f"cannot resume from {path}: the configuration differs from the one it was trained with in "
            f"{len(diff)} key(s): {'; '.join(diff)}. A resumed run must continue the same run: resume with the "
            f"same profile/overrides, or start a new run_dir (only {task}.epochs may change on resume)"
        )
    return ck

"""A run's record: the resolved ``config.yaml`` and ``versions.json`` (libraries, machine, commit).

:func:`prepare_run_dir` is the record's one writer; :class:`sapkit.io.run_paths.RunDir` names the files.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import yaml

from sapkit.config import Config, config_to_dict, save_config
from sapkit.io.atomic import atomic_write_text
from sapkit.io.machine import machine_info, source_commit
from sapkit.io.run_paths import RunDir

__all__ = ["prepare_run_dir", "library_versions"]


def library_versions() -> dict[str, Any]:
    """Versions of python, torch, monai, numpy, CUDA/cuDNN, the GPU name (None on CPU), the machine, the commit.

    ``"machine"`` is :func:`sapkit.io.machine.machine_info`: CPU model, instruction set, the capability
    torch dispatches to, thread counts and the numerics environment variables (training results
    differ between CPUs; docs/reproducibility.md)."""
    import monai
    import nibabel
    import numpy
    import torch

    from sapkit import __version__

    cuda = torch.cuda.is_available()
    return {
        "sapkit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "nibabel": nibabel.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "machine": machine_info(),
        "commit": source_commit(),
    }


def prepare_run_dir(run_dir: str | Path | RunDir, config: Config) -> RunDir:
    """Create the run folder and record ``config.yaml`` and ``versions.json``; return its :class:`RunDir`.

    The record's one writer: ``sapkit reproduce`` calls it before the first notebook, and each notebook
    that starts a stage (run by hand in a new folder it records its configuration). A record that already
    holds the same content is left as it is; another configuration replaces it (the latest stage's).
    """
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    rd.path.mkdir(parents=True, exist_ok=True)
    if not _holds(rd.config_yaml, yaml.safe_load, yaml.safe_load(yaml.safe_dump(config_to_dict(config)))):
        save_config(config, rd.config_yaml)
    versions = library_versions()
    if not _holds(rd.versions_json, json.loads, json.loads(json.dumps(versions))):
        atomic_write_text(rd.versions_json, json.dumps(versions, indent=2))
    return rd


def _holds(path: Path, parse: Any, content: Any) -> bool:
    try:  # whether ``path`` exists and parses to ``content``
        return path.is_file() and parse(path.read_text()) == content
    except (ValueError, yaml.YAMLError):  # unparsable: rewrite it
        return False

"""Run folders: the contract between stages (DESIGN.md "Run folder").

Every stage takes ``run_dir`` and reads what earlier stages wrote there. This module writes
the run metadata (resolved ``config.yaml``, ``versions.json``) and names the standard paths.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

from sapkit.config import Config, save_config
from sapkit.io.nifti import atomic_write_text

__all__ = ["prepare_run_dir", "library_versions", "data_dir", "default_run_dir"]


def default_run_dir(profile: str) -> Path:
    """``runs/<profile>`` relative to the current folder."""
    return Path("runs") / profile


def data_dir(run_dir: str | Path, data: str | Path | None = None) -> Path:
    """The data folder of a run: ``data`` when given, else ``run_dir/data``."""
    return Path(data) if data is not None else Path(run_dir) / "data"


def library_versions() -> dict[str, Any]:
    """Versions of python, torch, monai, numpy, CUDA/cuDNN and the GPU name (None on CPU)."""
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
    }


def prepare_run_dir(run_dir: str | Path, config: Config) -> Path:
    """Create ``run_dir`` and write ``config.yaml`` and ``versions.json`` into it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    atomic_write_text(run_dir / "versions.json", json.dumps(library_versions(), indent=2))
    return run_dir

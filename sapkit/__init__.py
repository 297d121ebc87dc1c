"""sapkit — Supervised Anatomical Pretraining (SAP) for bone-metastasis segmentation in WB-MRI.

The package holds the logic; the notebooks in ``notebooks/`` tell the story. Import the
stage modules directly (``sapkit.metrics``, ``sapkit.training.skeleton_task`` …); only the most used entry
points are re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from sapkit.config import load_config
from sapkit.errors import SapkitError

__all__ = ["__version__", "load_config", "SapkitError"]

"""The label maps under the stage-01 name that notebooks 00–02 and docs/method.md import.

Their one home is :mod:`sapkit.label_maps`, a foundation module (docs/design.md §2a): the data
manifest, the phantom and the metrics need them below the labelling stage. New code imports from
there.
"""

from __future__ import annotations

from sapkit.label_maps import FINE_ATLAS, FINE_TO_SKELETON, LESION_CLASSES, SKELETON_CLASSES

__all__ = ["SKELETON_CLASSES", "LESION_CLASSES", "FINE_ATLAS", "FINE_TO_SKELETON"]

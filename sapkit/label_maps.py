"""Label maps: the 10-class SAP skeleton map, the lesion map and the kit's fine atlas (the kit's label vocabulary).

Fine atlas convention (docs/method.md §2.4): 1–7 C1–C7, 8–19 T1–T12, 20–24 L1–L5, 25 sacrum,
26/27 femur L/R, 28/29 hip bone L/R, 30/31 humerus L/R, 32/33 scapula L/R, 34/35 clavicle L/R,
36 sternum, 37–48 left ribs 1–12, 49–60 right ribs 1–12, 61 intervertebral discs.
Ribs and discs map to background in the SAP map (ribs are not a SAP class).

A foundation module (docs/design.md §2a): it imports nothing, so every layer can name a class —
the data manifest, the phantom, the metrics' per-bone report, training, plotting.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

__all__ = ["SKELETON_CLASSES", "LESION_CLASSES", "FINE_ATLAS", "FINE_TO_SKELETON"]

SKELETON_CLASSES: Mapping[int, str] = MappingProxyType({
    0: "background", 1: "cervical spine", 2: "thoracic spine", 3: "lumbar spine", 4: "femur",
    5: "pelvis", 6: "humerus", 7: "scapulae", 8: "clavicles", 9: "sternum",
})

LESION_CLASSES: Mapping[int, str] = MappingProxyType({0: "background", 1: "lesion"})


def _fine_atlas() -> dict[int, str]:
    names = {0: "background"}
    names.update({i: f"C{i}" for i in range(1, 8)})
    names.update({7 + i: f"T{i}" for i in range(1, 13)})
    names.update({19 + i: f"L{i}" for i in range(1, 6)})
    names.update({25: "sacrum", 26: "femur L", 27: "femur R", 28: "hip bone L", 29: "hip bone R",
                  30: "humerus L", 31: "humerus R", 32: "scapula L", 33: "scapula R",
                  34: "clavicle L", 35: "clavicle R", 36: "sternum"})
    names.update({36 + i: f"rib L{i}" for i in range(1, 13)})
    names.update({48 + i: f"rib R{i}" for i in range(1, 13)})
    names[61] = "intervertebral disc"
    return names


FINE_ATLAS: Mapping[int, str] = MappingProxyType(_fine_atlas())


def _fine_to_skeleton() -> dict[int, int]:
    mapping = {0: 0}
    mapping.update({i: 1 for i in range(1, 8)})
    mapping.update({i: 2 for i in range(8, 20)})
    mapping.update({i: 3 for i in range(20, 26)})  # L1-L5 + sacrum -> lumbar (6-label group)
    mapping.update({26: 4, 27: 4, 28: 5, 29: 5, 30: 6, 31: 6, 32: 7, 33: 7, 34: 8, 35: 8, 36: 9})
    mapping.update({i: 0 for i in range(37, 62)})  # ribs and discs are not SAP classes
    return mapping


FINE_TO_SKELETON: Mapping[int, int] = MappingProxyType(_fine_to_skeleton())

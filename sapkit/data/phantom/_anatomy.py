"""Geometry of the synthetic body: subject parameters, pose, and the analytic parts list.

The body is described in a *canonical* adult frame (RAS+ mm, z = height above the floor of a
1.75 m man) and mapped to the world by a similarity (subject scale, global pose) — limbs get an
extra rotation about their joint first. Parts are painted in order; bones carry their fine-atlas
label (``sapkit.label_maps.FINE_ATLAS``), unlabelled bones (forearm, tibia, patella) label 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from sapkit.data.phantom._shapes import Capsule, Ellipsoid, EllipticCylinder, Profile, rotation

__all__ = ["Tissue", "SubjectParams", "Pose", "Part", "Z_TOP", "Z_BOTTOM", "HALF_WIDTH", "HALF_DEPTH",
           "body_parts", "node_station_centres"]

Z_TOP, Z_BOTTOM = 1620.0, 480.0  # canonical field of view: skull base to just below the knees
HALF_WIDTH, HALF_DEPTH = 265.0, 140.0  # canonical half extents (mm) the grid must hold (arms included)
_EYE = tuple(map(tuple, np.eye(3)))


class Tissue(IntEnum):
    """Tissue classes painted by the phantom (contrast is looked up per tissue)."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    LUNG = 3
    LIVER = 4
    SPLEEN = 5
    KIDNEY = 6
    BLADDER = 7
    HEART = 8
    CORD = 9
    CSF = 10
    DISC = 11
    MARROW = 12
    CORTEX = 13
    NODE = 14
    LESION = 15
    BOWEL = 16
    VESSEL = 17
    PROSTATE = 18


@dataclass(frozen=True)
class SubjectParams:
    """Per-subject anatomy variation (dimensionless factors unless a unit is named).

    ``scale`` maps canonical mm to world mm; ``girth``/``fat`` widen soft tissue and the fat
    layer; ``bone`` thickens bones; ``curvature`` scales kyphosis/lordosis; ``arm_abduction_deg``
    and ``leg_abduction_deg`` are the rest posture; ``nodes`` lists lymph nodes as
    (canonical centre (3,), canonical radii (3,), rotation angle deg); ``bowel`` likewise.
    """

    scale: float
    girth: float = 1.0
    fat: float = 1.0
    bone: float = 1.0
    curvature: float = 1.0
    arm_abduction_deg: float = 2.0
    leg_abduction_deg: float = 2.0
    organ_shift_mm: tuple[float, ...] = (0.0,) * 9
    nodes: tuple = ()
    bowel: tuple = ()


@dataclass(frozen=True)
class Pose:
    """Rigid pose of one scan: global rotation/shift (world mm) and limb rotations (3×3)."""

    rot: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(3))
    shift_mm: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    limbs: dict = field(default_factory=dict)  # 'arm_L', 'arm_R', 'leg_L', 'leg_R' -> (3, 3)


@dataclass(frozen=True)
class Part:
    """Shapes painted with one tissue (soft) or one bone (cortex rim + marrow) and one label."""

    kind: str  # 'soft' or 'bone'
    tissue: int
    label: int
    shapes: tuple
    segment: str = "trunk"  # 'trunk' or a limb key of Pose.limbs
    protect_bone: bool = False


# Joint centres (canonical) of the limbs: rotations of a scan pivot here.
def joints() -> dict[str, npt.NDArray[np.float64]]:
    """Canonical joint centres (mm) of the shoulders and hips."""
    return {"arm_L": np.array([-172.0, -8, 1440]), "arm_R": np.array([172.0, -8, 1440]),
            "leg_L": np.array([-88.0, 12, 928]), "leg_R": np.array([88.0, 12, 928])}


_SPINE_Z = np.array([1650, 1600, 1470, 1350, 1190, 1110, 1010, 930, 850.0])
_SPINE_Y = np.array([0, -5, -25, -50, -35, -15, -30, -60, -80.0])


def _spine_y(z, curvature: float):
    return curvature * np.interp(z, _SPINE_Z, _SPINE_Y)


def _frame(z: float, curvature: float) -> npt.NDArray[np.float64]:
    """Local frame (columns u=right, v=anterior, w=up along the spine) at height z."""
    slope = (_spine_y(z + 2, curvature) - _spine_y(z - 2, curvature)) / 4.0
    w = np.array([0.0, slope, 1.0]) / np.hypot(slope, 1.0)
    v = np.array([0.0, 1.0, -slope]) / np.hypot(slope, 1.0)
    return np.stack([np.array([1.0, 0, 0]), v, w], axis=1)


def _vertebra_sizes(i: int) -> dict[str, float]:
    if i < 7:  # C1-C7
        return dict(rx=12, ry=10, h=14, canal=8, arch=5.5, spin=30 if i == 6 else 20, tp=18, disc=4)
    if i < 19:  # T1-T12
        j = (i - 7) / 11
        return dict(rx=13 + 7 * j, ry=11 + 6 * j, h=17 + 7 * j, canal=8, arch=5, spin=30, tp=25, disc=5)
    j = (i - 19) / 4  # L1-L5
    return dict(rx=21 + 4 * j, ry=16 + 2 * j, h=26 + 2 * j, canal=10, arch=6, spin=28, tp=30, disc=9)


def _spine(sp: SubjectParams) -> tuple[list[Part], list[npt.NDArray], dict[int, tuple[float, float]]]:
    """Vertebrae C1-L5 (fine labels 1-24) with discs (61), sacrum (25); canal centre line."""
    parts, canal_line, levels = [], [], {}
    z, b, c = 1598.0, sp.bone, sp.curvature
    for i in range(24):
        s = _vertebra_sizes(i)
        zc = z - s["h"] / 2
        centre = np.array([0.0, _spine_y(zc, c), zc])
        levels[i + 1] = (float(zc), float(centre[1]))
        rot = _frame(zc, c)
        R = tuple(map(tuple, rot))

        def loc(p, centre=centre, rot=rot):
            return tuple(centre + rot @ np.asarray(p, dtype=float))

        rx, ry, canal, arch = s["rx"] * b, s["ry"] * b, s["canal"] * b, s["arch"] * b
        back = -(ry + canal)
        shapes = [EllipticCylinder(tuple(centre), R, (rx, ry), s["h"] / 2),
                  EllipticCylinder(loc((0, back, 0)), R, (canal + arch, canal + arch), 0.35 * s["h"], (canal, canal)),
                  Capsule(loc((0, back - canal - 0.5 * arch, 0)),
                          loc((0, back - canal - s["spin"], -(0.7 if 7 <= i < 19 else 0.35) * s["spin"])),
                          0.8 * arch, 0.6 * arch)]
        for sgn in (-1, 1):
            shapes.append(Capsule(loc((sgn * (canal + 0.5 * arch), back, 0)),
                                  loc((sgn * (canal + s["tp"]), back - (10 if 7 <= i < 19 else 0), 0)), 0.7 * arch, 0.6 * arch))
        parts.append(Part("bone", Tissue.MARROW, i + 1, tuple(shapes)))
        canal_line.append(np.asarray(loc((0, back, 0))))
        z -= s["h"]
        dz = s["disc"]
        zd = z - dz / 2
        parts.append(Part("soft", Tissue.DISC, 61, (EllipticCylinder((0.0, _spine_y(zd, c), zd), tuple(map(tuple, _frame(zd, c))),
                                                                       (0.95 * rx, 0.95 * ry), dz / 2 + 0.5),)))
        z -= dz
    sac = []
    for dz, radii in ((18, (48, 22, 18)), (52, (38, 18, 20)), (86, (20, 12, 18))):
        zc = z - dz
        sac.append(Ellipsoid((0.0, _spine_y(zc, c) - 5, zc), tuple(map(tuple, _frame(zc, c))),
                             (radii[0] * b, radii[1] * b, radii[2])))
    parts.append(Part("bone", Tissue.MARROW, 25, tuple(sac)))
    return parts, canal_line, levels


def _ribs_sternum(sp: SubjectParams, levels) -> list[Part]:
    a = [60, 85, 100, 112, 120, 126, 130, 132, 132, 128, 122, 115]
    d = [45, 62, 75, 85, 92, 97, 100, 100, 98, 95, 90, 85]
    end = [0.78, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.75, 0.7, 0.65, 0.45, 0.35]
    parts, b, g = [], sp.bone, sp.girth
    for i in range(12):
        zt, yt = levels[8 + i]
        yc = yt + d[i] * g - 30
        phis = np.linspace(0.12 * np.pi, end[i] * np.pi, 7)
        for side, label in ((-1, 37 + i), (1, 49 + i)):
            pts = [(side * a[i] * g * np.sin(p), yc - d[i] * g * np.cos(p), zt - (25 + 7 * i) * p / np.pi) for p in phis]
            caps = tuple(Capsule(pts[k], pts[k + 1], 5.5 * b, 5.5 * b) for k in range(len(pts) - 1))
            parts.append(Part("bone", Tissue.MARROW, label, caps))
    tilt = rotation((1, 0, 0), 9.0)
    parts.append(Part("bone", Tissue.MARROW, 36, (
        Ellipsoid((0.0, 78 * g, 1418), _EYE, (26, 11 * b, 26)),
        EllipticCylinder((0.0, 90 * g, 1330), tuple(map(tuple, tilt)), (16, 10 * b), 62),
        Ellipsoid((0.0, 100 * g, 1262), _EYE, (8, 5, 10)))))
    return parts


def _shoulder_girdle(sp: SubjectParams) -> list[Part]:
    parts, b, g = [], sp.bone, sp.girth
    for s, (scap, clav) in ((-1, (32, 34)), (1, (33, 35))):
        parts.append(Part("bone", Tissue.MARROW, scap, (
            Ellipsoid((s * 95 * g, -88 * g, 1370), tuple(map(tuple, rotation((0, 0, 1), s * 25))), (48, 7 * b, 68)),
            Capsule((s * 70 * g, -95 * g, 1405), (s * 160, -40, 1466), 6 * b, 6 * b),
            Capsule((s * 130, -70 * g, 1420), (s * 152, -20, 1440), 11 * b, 11 * b))))
        p = [(s * 22, 62 * g, 1452), (s * 85, 55 * g, 1465), (s * 158, -30, 1472)]
        parts.append(Part("bone", Tissue.MARROW, clav, (Capsule(p[0], p[1], 8.5 * b, 8.5 * b), Capsule(p[1], p[2], 8.5 * b, 8.5 * b))))
    return parts


def _pelvis_legs(sp: SubjectParams) -> tuple[list[Part], list[Part]]:
    soft, parts, b, f, g = [], [], sp.bone, sp.fat, sp.girth
    for s, (hip, femur, key) in ((-1, (28, 26, "leg_L")), (1, (29, 27, "leg_R"))):
        H = np.array([s * 88.0, 12, 928])
        rest = rotation((0, 1, 0), -s * sp.leg_abduction_deg)

        def leg(p, H=H, rest=rest):
            return tuple(H + rest @ (np.asarray(p, dtype=float) - H))

        parts.append(Part("bone", Tissue.MARROW, hip, (
            Ellipsoid((s * 78, -28, 1035), tuple(map(tuple, rotation((0, 0, 1), -s * 43))), (9 * b, 55, 52)),
            Capsule((s * 45, -62, 1020), (s * 70, -40, 1010), 14 * b, 14 * b),
            Capsule((s * 80, -10, 1000), tuple(H + (s * 5, 0, 10)), 22 * b, 22 * b),
            Ellipsoid(tuple(H + (s * 8, 0, 0)), _EYE, (30 * b, 30 * b, 30 * b)),
            Capsule(tuple(H + (-s * 15, 20, -10)), (s * 12, 52, 895), 11 * b, 11 * b),
            Capsule(tuple(H + (0, -15, -20)), (s * 58, -25, 850), 14 * b, 14 * b),
            Capsule((s * 58, -25, 850), (s * 14, 45, 875), 8 * b, 8 * b))))
        soft.append(Part("soft", Tissue.FAT, 0, (Capsule(leg((s * 92, 0, 905)), leg((s * 88, 5, 470)), 85 * g, 55 * g),), key))
        soft.append(Part("soft", Tissue.MUSCLE, 0, (Capsule(leg((s * 92, 0, 905)), leg((s * 88, 5, 470)),
                                                            (85 - 16 * f) * g, (55 - 10 * f) * g),), key))
        parts.append(Part("bone", Tissue.MARROW, femur, (
            Ellipsoid(leg(H), _EYE, (24 * b,) * 3),
            Capsule(leg(H), leg((s * 130, 0, 902)), 16 * b, 16 * b),
            Ellipsoid(leg((s * 140, -8, 912)), _EYE, (15 * b, 18 * b, 24 * b)),
            Capsule(leg((s * 132, 0, 895)), leg((s * 90, 8, 545)), 15 * b, 13 * b),
            Ellipsoid(leg((s * 88, 2, 530)), _EYE, (40 * b, 30 * b, 24 * b))), key))
        parts.append(Part("bone", Tissue.MARROW, 0, (
            Ellipsoid(leg((s * 88, 0, 488)), _EYE, (38 * b, 30 * b, 14)),
            Capsule(leg((s * 88, -2, 480)), leg((s * 88, -5, 300)), 15 * b, 15 * b)), key))
        parts.append(Part("bone", Tissue.MARROW, 0, (Ellipsoid(leg((s * 88, 42, 528)), _EYE, (20, 9, 22)),), key))
    return soft, parts


def _arms(sp: SubjectParams) -> tuple[list[Part], list[Part]]:
    soft, parts, b, f, g = [], [], sp.bone, sp.fat, sp.girth
    for s, (hum, key) in ((-1, (30, "arm_L")), (1, (31, "arm_R"))):
        S = joints()[key]
        rest = rotation((0, 1, 0), -s * sp.arm_abduction_deg)

        def arm(p, S=S, rest=rest):
            return tuple(S + rest @ (np.asarray(p, dtype=float) - S))

        E, W = (s * 180, -8, 1135), (s * 186, 5, 860)
        soft.append(Part("soft", Tissue.FAT, 0, (Capsule(arm(S), arm(E), 46 * g, 40 * g), Capsule(arm(E), arm(W), 40 * g, 28 * g),
                                                   Ellipsoid(arm((s * 190, 15, 800)), _EYE, (16, 40, 60))), key))
        soft.append(Part("soft", Tissue.MUSCLE, 0, (Capsule(arm(S), arm(E), (46 - 10 * f) * g, (40 - 9 * f) * g),
                                                     Capsule(arm(E), arm(W), (40 - 9 * f) * g, (28 - 7 * f) * g)), key))
        parts.append(Part("bone", Tissue.MARROW, hum, (
            Ellipsoid(arm(S), _EYE, (23 * b,) * 3),
            Capsule(arm((s * 174, -8, 1415)), arm((s * 180, -8, 1140)), 12 * b, 10 * b),
            Ellipsoid(arm((s * 180, -5, 1125)), _EYE, (28 * b, 13 * b, 13 * b))), key))
        parts.append(Part("bone", Tissue.MARROW, 0, (Capsule(arm((s * 184, 2, 1105)), arm((s * 189, 15, 870)), 7 * b, 7 * b),
                                                    Capsule(arm((s * 174, -16, 1105)), arm((s * 182, -5, 870)), 7 * b, 7 * b)), key))
    return soft, parts


_TRUNK = np.array([  # z, half-width, half-depth, centre y
    (870, 165, 100, -10), (930, 175, 110, -5), (1000, 168, 110, 0), (1080, 150, 108, 5), (1170, 142, 112, 5),
    (1250, 152, 118, 0), (1330, 160, 118, -5), (1420, 162, 115, -10), (1465, 150, 98, -10), (1490, 62, 62, -5),
    (1560, 55, 58, 0), (1600, 62, 70, 5), (1650, 72, 88, 15)], dtype=float)


def _trunk_soft(sp: SubjectParams) -> tuple[list[Part], list[Part]]:
    z, w, d, cy = _TRUNK.T
    g, f, o = sp.girth, sp.fat, np.asarray(sp.organ_shift_mm)
    fat_mm = 18 * f
    base = (0.0, 0.0, 0.0)
    parts = [Part("soft", Tissue.FAT, 0, (Profile(base, _EYE, tuple(z), tuple(w * g), tuple(d * g), tuple(cy)),)),
             Part("soft", Tissue.MUSCLE, 0, (Profile(base, _EYE, tuple(z), tuple(w * g - fat_mm), tuple(d * g - fat_mm), tuple(cy)),))]
    organs = [Part("soft", Tissue.FAT, 0, (Profile(base, _EYE, (900, 960, 1200, 1245), (100 * g, 115 * g, 100 * g, 70 * g),
                                                  (60 * g, 70 * g, 70 * g, 50 * g), (25, 25, 25, 25)),))]
    ys = _spine_y
    c = sp.curvature
    organs += [
        Part("soft", Tissue.MUSCLE, 0, tuple(Capsule((s * 30, ys(1180, c) - 5, 1180), (s * 75, 10, 945), 20, 24) for s in (-1, 1))),
        Part("soft", Tissue.LUNG, 0, (Ellipsoid((-68 * g, -5, 1340), _EYE, (52 * g, 82 * g, 120)),
                                      Ellipsoid((68 * g, -5, 1348), _EYE, (52 * g, 82 * g, 112)))),
        Part("soft", Tissue.HEART, 0, (Ellipsoid((-20 + o[0], 35 * g, 1290), tuple(map(tuple, rotation((0, 1, 0), 25))), (55, 46, 62)),)),
        Part("soft", Tissue.LIVER, 0, (Ellipsoid((60 * g + o[1], 15, 1200 + o[2]), tuple(map(tuple, rotation((0, 1, 0), -15))), (95 * g, 82 * g, 70)),)),
        Part("soft", Tissue.SPLEEN, 0, (Ellipsoid((-88 * g, -35, 1215 + o[3]), tuple(map(tuple, rotation((0, 0, 1), -20))), (30, 48, 55)),)),
        Part("soft", Tissue.KIDNEY, 0, tuple(Ellipsoid((s * 62, ys(1130, c) - 5, 1130 + o[4] + (8 if s < 0 else 0)),
                                                       tuple(map(tuple, rotation((0, 1, 0), s * 15))), (28, 24, 55)) for s in (-1, 1))),
        Part("soft", Tissue.BOWEL, 0, tuple(Ellipsoid(tuple(ce), _EYE, tuple(r)) for ce, r in sp.bowel)),
        Part("soft", Tissue.VESSEL, 0, (Capsule((0, 40, 1420), (-20, 0, 1395), 11, 11),
                                        Capsule((-20, 0, 1395), (-18, ys(1250, c) + 28, 1250), 11, 11),
                                        Capsule((-18, ys(1250, c) + 28, 1250), (-12, ys(1040, c) + 30, 1040), 11, 10),
                                        Capsule((20, ys(1200, c) + 30, 1200), (15, ys(1040, c) + 30, 1040), 10, 10))),
        Part("soft", Tissue.BLADDER, 0, (Ellipsoid((0.0, 55, 918 + o[5]), _EYE, (42 * (1 + o[6] / 50), 35, 35)),)),
        Part("soft", Tissue.PROSTATE, 0, (Ellipsoid((0.0, 35, 883), _EYE, (20, 16, 18)),)),
    ]
    return parts, organs


def _canal(canal_line, sp: SubjectParams) -> list[Part]:
    csf = tuple(Capsule(tuple(p), tuple(q), 7 * sp.bone, 7 * sp.bone) for p, q in zip(canal_line[:-1], canal_line[1:]))
    cord = tuple(Capsule(tuple(p), tuple(q), 4.5, 4.0) for p, q in zip(canal_line[:19], canal_line[1:20]))
    return [Part("soft", Tissue.CSF, 0, csf, protect_bone=True), Part("soft", Tissue.CORD, 0, cord, protect_bone=True)]


def node_station_centres(curvature: float = 1.0) -> list[tuple[npt.NDArray, npt.NDArray]]:
    """Lymph-node stations: (canonical centre (3,), spread (3,) mm) — cervical to inguinal."""
    ys = _spine_y
    out = []
    for s in (-1, 1):
        out += [(np.array([s * 40, -5, 1550.0]), np.array([10, 15, 40.0])),
                (np.array([s * 125, -15, 1390.0]), np.array([15, 20, 25.0])),
                (np.array([s * 30, ys(1120, curvature) + 26, 1120.0]), np.array([6, 8, 60.0])),
                (np.array([s * 45, ys(1010, curvature) + 40, 990.0]), np.array([12, 12, 30.0])),
                (np.array([s * 62, 0, 935.0]), np.array([8, 15, 20.0])),
                (np.array([s * 85, 75, 880.0]), np.array([15, 10, 20.0]))]
    out.append((np.array([5, 20, 1380.0]), np.array([15, 15, 30.0])))
    return out


def body_parts(sp: SubjectParams) -> list[Part]:
    """All parts of one subject in painting order (canonical mm, before any pose)."""
    spine, canal_line, levels = _spine(sp)
    envelope, organs = _trunk_soft(sp)
    arm_soft, arm_bones = _arms(sp)
    leg_soft, leg_bones = _pelvis_legs(sp)
    parts = envelope + arm_soft + leg_soft + organs
    parts += _ribs_sternum(sp, levels) + _shoulder_girdle(sp) + leg_bones + arm_bones + spine
    parts += _canal(canal_line, sp)
    parts.append(Part("soft", Tissue.NODE, 0, tuple(Ellipsoid(tuple(c), tuple(map(tuple, rotation((0, 0, 1), ang))), tuple(r))
                                                 for c, r, ang in sp.nodes), protect_bone=True))
    return parts

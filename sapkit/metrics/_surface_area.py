"""Marching-cubes surface elements of a binary mask: the area of each 2×2(×2) voxel cube's surface.

The boundary of a mask is made of surface elements ("surfels") on the dual grid of 2×2(×2) voxel
cubes (Nikolov et al. 2021, DeepMind's ``surface-distance``). Each cube has a neighbour code (one
bit per corner voxel) and carries the area (3D, mm²) or length (2D, mm) of the marching-cubes
iso-surface at level 0.5 inside it; :func:`surface_area_table` gives that measure for every code
at a voxel spacing, and :func:`sapkit.metrics.compute_surface_distances` weights each surface
element with it (``docs/metrics.md`` §9).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import numpy.typing as npt

__all__ = ["surface_area_table"]


def _corner_bits(ndim: int) -> list[tuple[int, ...]]:
    """Corner offsets of a 2^ndim cube; corner ``i`` sets bit ``i`` of the neighbour code."""
    return [tuple(c) for c in itertools.product((0, 1), repeat=ndim)]


@functools.lru_cache(maxsize=64)
def surface_area_table(spacing_mm: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Marching-cubes surface area (3D, mm²) or contour length (2D, mm) per neighbour code.

    Each 2×2(×2) cube of voxels has a code: bit ``i`` set when corner ``i`` (in
    ``itertools.product((0, 1), repeat=ndim)`` order) is foreground. The iso-surface at level 0.5
    cuts every edge whose ends differ at its midpoint. On a face with two cut edges the cut
    points are joined; on a saddle face (4 cut edges) the segments keep the *minority* corners
    apart (foreground when fewer than half the corners are foreground, background when more; with
    exactly half, the option with the smaller area), so a code and its complement share one
    surface, as in the classic marching-cubes table. Segments are chained into closed polygons and
    each polygon is fanned into triangles from the vertex whose fan has the largest area on the
    isotropic cube (the first such vertex on ties); the areas are then taken in mm. This
    reproduces DeepMind's ``surface-distance`` table (tested against MONAI's copy of it).

    Parameters
    ----------
    spacing_mm : tuple of float
        Voxel size per axis in mm (2 or 3 values).

    Returns
    -------
    (2**(2**ndim),) float64
        Area in mm² (3D) or length in mm (2D) for every code; 0 for codes 0 and "all corners".
    """
    sp = np.asarray(spacing_mm, dtype=np.float64)
    n_codes = 2 ** (2 ** sp.size)
    owner, option, tri = _unit_triangles(sp.size)
    if sp.size == 2:  # segments: length of (b - a) in mm
        measure = np.linalg.norm((tri[:, 1] - tri[:, 0]) * sp, axis=1)
    else:
        measure = 0.5 * np.linalg.norm(np.cross((tri[:, 1] - tri[:, 0]) * sp, (tri[:, 2] - tri[:, 0]) * sp), axis=1)
    per_option = np.zeros((n_codes, 2))
    np.add.at(per_option, (owner, option), measure)
    n_fg = np.array([bin(c).count("1") for c in range(n_codes)])
    half = 2 ** sp.size // 2
    # fewer foreground corners: keep foreground apart (option 1); more: background (option 0);
    # exactly half: the smaller surface
    table = np.where(n_fg < half, per_option[:, 1], np.where(n_fg > half, per_option[:, 0], per_option.min(axis=1)))
    table[0] = table[-1] = 0.0
    return table


@functools.lru_cache(maxsize=2)
def _unit_triangles(ndim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangles (3D) or segments (2D) of every code on the unit cube, for both saddle options.

    Returns (code, option, vertices): option 1 keeps foreground corners apart on saddle faces,
    option 0 background corners; vertices are (N, 3, 3) triangles or (N, 2, 2) segments.
    """
    corners = _corner_bits(ndim)
    n_corners = len(corners)
    faces = [list(range(4))] if ndim == 2 else [
        [i for i, c in enumerate(corners) if c[axis] == side] for axis in range(3) for side in (0, 1)]
    rings = [_face_ring(face, corners) for face in faces]
    owner, option, tris = [], [], []
    full = 2 ** n_corners - 1
    # a code and its complement with the other saddle option cut the same edges into the same
    # pieces, so half of the codes are built and the other half mirrored
    for code in range(1, 2 ** (n_corners - 1)):
        inside = [(code >> i) & 1 for i in range(n_corners)]
        for separate in (0, 1):
            for t in _cube_pieces(inside, separate, rings, corners):
                owner.extend((code, full - code))
                option.extend((separate, 1 - separate))
                tris.extend((t, t))
    return np.asarray(owner), np.asarray(option), np.asarray(tris, dtype=np.float64)


def _cube_pieces(inside: list[int], separate: int, rings: list[list[int]],
                 corners: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Unit-cube triangles (3D) or segments (2D) of one code; saddle faces keep ``separate`` corners apart."""
    segments = []
    for ring in rings:
        cut = [tuple(sorted((ring[k], ring[(k + 1) % 4]))) for k in range(4)
               if inside[ring[k]] != inside[ring[(k + 1) % 4]]]
        if len(cut) == 2:
            segments.append((cut[0], cut[1]))
        elif len(cut) == 4:
            for corner in ring:
                if inside[corner] == separate:
                    own = [e for e in cut if corner in e]
                    segments.append((own[0], own[1]))

    def midpoint(edge: tuple[int, int]) -> tuple[float, ...]:
        return tuple((a + b) / 2.0 for a, b in zip(corners[edge[0]], corners[edge[1]]))

    if len(corners) == 4:
        return [np.array([midpoint(a), midpoint(b)]) for a, b in segments]
    pieces = []
    for loop in _chain(segments):
        pts = [midpoint(e) for e in loop]
        areas = [round(_fan_area(pts, i), 9) for i in range(len(pts))]
        start = areas.index(max(areas))  # fan from the vertex with the largest isotropic fan area
        pts = pts[start:] + pts[:start]
        pieces.extend(np.array([pts[0], pts[k], pts[k + 1]]) for k in range(1, len(pts) - 1))
    return pieces


def _face_ring(face: list[int], corners: list[tuple[int, ...]]) -> list[int]:
    """The 4 corners of a square face in cyclic order."""
    ring = [face[0]]
    remaining = set(face[1:])
    while remaining:
        last = corners[ring[-1]]
        nxt = next(i for i in sorted(remaining) if sum(x != y for x, y in zip(corners[i], last)) == 1)
        ring.append(nxt)
        remaining.remove(nxt)
    return ring


def _chain(segments: list[tuple[tuple[int, int], tuple[int, int]]]) -> list[list[tuple[int, int]]]:
    """Chain segments sharing cut edges into closed loops of cut edges."""
    adjacency: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for a, b in segments:
        adjacency.setdefault(a, []).append(b)
        adjacency.setdefault(b, []).append(a)
    loops, seen = [], set()
    for start in adjacency:
        if start in seen:
            continue
        loop, prev, cur = [start], start, adjacency[start][0]
        seen.add(start)
        while cur != start:
            loop.append(cur)
            seen.add(cur)
            prev, cur = cur, next(v for v in adjacency[cur] if v != prev)
        loops.append(loop)
    return loops


def _fan_area(points: list[tuple[float, ...]], start: int) -> float:
    """Area of the triangle fan of a polygon from vertex ``start`` (plain floats: called ~10⁴ times per table)."""
    pts = points[start:] + points[:start]
    x0, y0, z0 = pts[0]
    total = 0.0
    for k in range(1, len(pts) - 1):
        ax, ay, az = pts[k][0] - x0, pts[k][1] - y0, pts[k][2] - z0
        bx, by, bz = pts[k + 1][0] - x0, pts[k + 1][1] - y0, pts[k + 1][2] - z0
        cx, cy, cz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
        total += 0.5 * math.sqrt(cx * cx + cy * cy + cz * cz)
    return total


def _neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """Neighbour code of every 2^ndim cube of a (padded) mask; shape = mask.shape - 1."""
    m = mask.astype(np.uint8, copy=False)
    ndim = m.ndim
    code = np.zeros(tuple(s - 1 for s in m.shape), dtype=np.uint8)
    for bit, offset in enumerate(_corner_bits(ndim)):
        sl = tuple(slice(o, o + s - 1) for o, s in zip(offset, m.shape))
        code |= m[sl] << np.uint8(bit)
    return code

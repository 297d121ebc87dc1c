"""Analytic shapes in world mm and their rasterisation on a voxel grid.

Every shape is rasterised only inside its own bounding box, with numpy broadcasting of three
1-D coordinate vectors, so painting a whole body costs a few hundred small array operations.
World coordinates are RAS+ mm (x → patient's right, y → anterior, z → superior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Grid", "Ellipsoid", "Capsule", "EllipticCylinder", "Profile", "rotation", "transform_shape"]

_F = np.float32


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid.

    Attributes
    ----------
    shape : (3,) int
        Voxels along X, Y, Z.
    spacing_mm : float
        Isotropic voxel size in mm.
    origin_mm : (3,) float
        World position (mm) of the centre of voxel (0, 0, 0).
    """

    shape: tuple[int, int, int]
    spacing_mm: float
    origin_mm: tuple[float, float, float]

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        """(4, 4) voxel → world (RAS+ mm) matrix."""
        a = np.diag([self.spacing_mm] * 3 + [1.0])
        a[:3, 3] = self.origin_mm
        return a

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm³)."""
        return self.spacing_mm ** 3 / 1000.0

    def box(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering the world box [lo, hi] (mm), clipped; None if outside."""
        o = np.asarray(self.origin_mm)
        i0 = np.floor((np.asarray(lo) - o) / self.spacing_mm).astype(int)
        i1 = np.ceil((np.asarray(hi) - o) / self.spacing_mm).astype(int) + 1
        i0 = np.maximum(i0, 0)
        i1 = np.minimum(i1, self.shape)
        if np.any(i1 <= i0):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))  # type: ignore[return-value]

    def axes(self, sl: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates (mm) of the voxel centres in ``sl``, shaped for broadcasting."""
        out = []
        for d, s in enumerate(sl):
            v = (self.origin_mm[d] + self.spacing_mm * np.arange(s.start, s.stop)).astype(_F)
            shape = [1, 1, 1]
            shape[d] = v.size
            out.append(v.reshape(shape))
        return out[0], out[1], out[2]


def rotation(axis: npt.ArrayLike, angle_deg: float) -> npt.NDArray[np.float64]:
    """(3, 3) rotation matrix about ``axis`` by ``angle_deg`` (right-hand rule, Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    n = np.linalg.norm(a)
    if n == 0 or angle_deg == 0:
        return np.eye(3)
    a = a / n
    t = np.deg2rad(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def _local(grid: Grid, sl, center, rot):
    x, y, z = grid.axes(sl)
    dx, dy, dz = x - _F(center[0]), y - _F(center[1]), z - _F(center[2])
    r = np.asarray(rot, dtype=_F)
    return ([r[0, i] * dx + r[1, i] * dy + r[2, i] * dz for i in range(3)])


@dataclass(frozen=True)
class Ellipsoid:
    """Solid ellipsoid: ``center`` (mm), ``rot`` (columns = local axes), ``radii`` (mm)."""

    center: tuple[float, float, float]
    rot: tuple
    radii: tuple[float, float, float]

    def bbox(self):
        r = np.asarray(self.rot) * np.asarray(self.radii)[None, :]
        h = np.sqrt((r ** 2).sum(axis=1))
        return np.asarray(self.center) - h, np.asarray(self.center) + h

    def mask(self, grid: Grid):
        sl = grid.box(*self.bbox())
        if sl is None:
            return None
        lx, ly, lz = _local(grid, sl, self.center, self.rot)
        rx, ry, rz = (_F(v) for v in self.radii)
        return sl, (lx / rx) ** 2 + (ly / ry) ** 2 + (lz / rz) ** 2 <= 1.0


@dataclass(frozen=True)
class EllipticCylinder:
    """Elliptic cylinder along its local z, optionally hollow (``inner`` radii) — a ring/arch."""

    center: tuple[float, float, float]
    rot: tuple
    radii: tuple[float, float]
    half_length: float
    inner: tuple[float, float] = (0.0, 0.0)

    def bbox(self):
        r = np.asarray(self.rot) * np.asarray([*self.radii, self.half_length])[None, :]
        h = np.abs(r).sum(axis=1)
        return np.asarray(self.center) - h, np.asarray(self.center) + h

    def mask(self, grid: Grid):
        sl = grid.box(*self.bbox())
        if sl is None:
            return None
        lx, ly, lz = _local(grid, sl, self.center, self.rot)
        q = (lx / _F(self.radii[0])) ** 2 + (ly / _F(self.radii[1])) ** 2
        m = (q <= 1.0) & (np.abs(lz) <= _F(self.half_length))
        if self.inner[0] > 0:
            m &= (lx / _F(self.inner[0])) ** 2 + (ly / _F(self.inner[1])) ** 2 > 1.0
        return sl, m


@dataclass(frozen=True)
class Capsule:
    """Tapered capsule (cone with spherical caps) from ``p0`` (radius ``r0``) to ``p1`` (``r1``)."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    r0: float
    r1: float

    def bbox(self):
        p = np.asarray([self.p0, self.p1])
        r = max(self.r0, self.r1)
        return p.min(axis=0) - r, p.max(axis=0) + r

    def mask(self, grid: Grid):
        sl = grid.box(*self.bbox())
        if sl is None:
            return None
        x, y, z = grid.axes(sl)
        p0 = np.asarray(self.p0, dtype=_F)
        d = np.asarray(self.p1, dtype=_F) - p0
        dd = _F(max(float(d @ d), 1e-9))
        qx, qy, qz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((qx * d[0] + qy * d[1] + qz * d[2]) / dd, 0.0, 1.0)
        dist2 = (qx - t * d[0]) ** 2 + (qy - t * d[1]) ** 2 + (qz - t * d[2]) ** 2
        r = _F(self.r0) + _F(self.r1 - self.r0) * t
        return sl, dist2 <= r * r


@dataclass(frozen=True)
class Profile:
    """Generalised elliptic cylinder along local z with radii/centre interpolated between knots.

    ``z`` (mm, increasing) are local positions of the knots; ``rx``, ``ry`` the half-axes and
    ``cy`` the local y-offset of the cross-section centre at each knot. Used for the trunk.
    """

    center: tuple[float, float, float]
    rot: tuple
    z: tuple[float, ...]
    rx: tuple[float, ...]
    ry: tuple[float, ...]
    cy: tuple[float, ...]

    def bbox(self):
        r = max(self.rx + self.ry) + max(abs(c) for c in self.cy)
        corners = np.array([[sx * r, sy * r, zz] for sx in (-1, 1) for sy in (-1, 1) for zz in (self.z[0], self.z[-1])])
        w = corners @ np.asarray(self.rot).T + np.asarray(self.center)
        return w.min(axis=0), w.max(axis=0)

    def mask(self, grid: Grid):
        sl = grid.box(*self.bbox())
        if sl is None:
            return None
        lx, ly, lz = _local(grid, sl, self.center, self.rot)
        # Tabulate the knots every ~0.25 voxel, then gather: much faster than np.interp on 3-D arrays.
        step = 0.25 * grid.spacing_mm
        table_z = np.arange(self.z[0], self.z[-1] + step, step)
        tables = [np.interp(table_z, self.z, v).astype(_F) for v in (self.rx, self.ry, self.cy)]
        idx = np.rint((lz - _F(self.z[0])) / _F(step)).astype(np.int32)
        inside_z = (idx >= 0) & (idx < table_z.size)
        np.clip(idx, 0, table_z.size - 1, out=idx)
        rx, ry, cy = (t[idx] for t in tables)
        m = (lx / rx) ** 2 + ((ly - cy) / ry) ** 2 <= 1.0
        m &= inside_z
        return sl, m


def transform_shape(shape, *, scale: float, rot: npt.NDArray, shift: npt.ArrayLike):
    """Apply the similarity ``p → rot @ (scale * p) + shift`` (mm) to a shape."""
    rot = np.asarray(rot, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)

    def pt(p):
        return tuple(float(v) for v in rot @ (scale * np.asarray(p, dtype=np.float64)) + shift)

    if isinstance(shape, Capsule):
        return Capsule(pt(shape.p0), pt(shape.p1), shape.r0 * scale, shape.r1 * scale)
    new_rot = tuple(map(tuple, rot @ np.asarray(shape.rot)))
    if isinstance(shape, Ellipsoid):
        return Ellipsoid(pt(shape.center), new_rot, tuple(r * scale for r in shape.radii))
    if isinstance(shape, EllipticCylinder):
        return EllipticCylinder(pt(shape.center), new_rot, tuple(r * scale for r in shape.radii),
                                shape.half_length * scale, tuple(r * scale for r in shape.inner))
    if isinstance(shape, Profile):
        return Profile(pt(shape.center), new_rot, tuple(v * scale for v in shape.z), tuple(v * scale for v in shape.rx),
                       tuple(v * scale for v in shape.ry), tuple(v * scale for v in shape.cy))
    raise TypeError(f"unknown shape {type(shape).__name__}")

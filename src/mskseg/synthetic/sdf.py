"""Signed distance functions (SDF) of simple primitives, in millimetres.

Conventions
-----------
* Points are arrays of shape ``(3, N)`` (one row per coordinate, so that each coordinate
  is contiguous); the result of an SDF is ``(N,)``: negative inside, positive outside,
  in mm. The dtype of the points is kept (``float32`` for image grids, ``float64`` for
  landmark projection): parameters are cast to the points' dtype.
* A primitive is defined in its own local frame by a centre and a rotation matrix whose
  columns are the primitive's axes written in the parent frame, so
  ``local = R.T @ (p - centre)``.
* Each primitive also exposes *anchors*: points given by dimensionless parametric
  coordinates ``u`` (shape ``(M, 3)``), used to define corresponding landmarks
  (:mod:`mskseg.synthetic.landmarks`), and ``bounds()``: spheres ``(centre, radius)``
  whose bounding box contains the primitive.

The ellipsoid and elliptic cylinder use Inigo Quilez's distance bound
``k0 (k0 - 1) / k1``; the capsule, sphere and rounded box are exact, the rounded elliptic
plate exact up to the 2D ellipse bound; smooth unions use the quadratic polynomial
smooth-min.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: SDF value (mm) used for points known to be far from a structure
BIG = 1.0e4


def _vec(v: object) -> np.ndarray:
    return np.asarray(v, dtype=float).reshape(3)


def _col(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return v.astype(dtype, copy=False).reshape(3, 1)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Cubic Hermite step: 0 below ``e0``, 1 above ``e1`` (``e0 > e1`` reverses it)."""
    t = np.clip((x - e0) * (1.0 / (e1 - e0)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial (quadratic) smooth minimum with blending width ``k`` (mm).

    Its gradient is a convex combination of the arguments' gradients, so it is
    1-Lipschitz when both arguments are; it is exactly ``min`` where ``|a - b| >= k``.
    """
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) * (1.0 / k)
    return np.minimum(a, b) - h * h * (0.25 * k)


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth maximum (smooth intersection), ``-smin(-a, -b, k)``."""
    return -smin(-a, -b, k)


def rotation_x(deg: float) -> np.ndarray:
    """Rotation matrix about +x by ``deg`` degrees (right-handed)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(deg: float) -> np.ndarray:
    """Rotation matrix about +y by ``deg`` degrees (right-handed)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(deg: float) -> np.ndarray:
    """Rotation matrix about +z by ``deg`` degrees (right-handed)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def euler_xyz(deg: tuple[float, float, float] | list[float]) -> np.ndarray:
    """``Rz @ Ry @ Rx`` for angles (degrees) about x, y and z."""
    ax, ay, az = (float(a) for a in deg)
    return rotation_z(az) @ rotation_y(ay) @ rotation_x(ax)


def frame_from_axes(u1: object, u2: object) -> np.ndarray:
    """Rotation whose columns are ``u1`` (normalised), ``u2`` orthogonalised, ``u1 x u2``."""
    a = _vec(u1) / np.linalg.norm(_vec(u1))
    b = _vec(u2) - np.dot(_vec(u2), a) * a
    b /= np.linalg.norm(b)
    return np.column_stack([a, b, np.cross(a, b)])


@dataclass(frozen=True)
class Frame:
    """A rigid (or mirrored, ``det = -1``) map ``world = rotation @ local + translation``."""

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation", np.asarray(self.rotation, float).reshape(3, 3))
        object.__setattr__(self, "translation", _vec(self.translation))

    def to_local(self, p: np.ndarray) -> np.ndarray:
        """Local coordinates of world points ``(3, N)``."""
        r = self.rotation.T.astype(p.dtype, copy=False)
        return r @ (p - _col(self.translation, p.dtype))

    def to_world(self, q: np.ndarray) -> np.ndarray:
        """World coordinates of local points ``(3, N)``."""
        r = self.rotation.astype(q.dtype, copy=False)
        return r @ q + _col(self.translation, q.dtype)

    def compose(self, inner: Frame) -> Frame:
        """The frame mapping ``inner``'s local coordinates through ``inner`` then ``self``."""
        return Frame(self.rotation @ inner.rotation, self.rotation @ inner.translation + self.translation)


def _ellipsoid_area(radii: object) -> float:
    a, b, c = np.asarray(radii, float) ** 1.6075
    return float(4 * np.pi * ((a * b + a * c + b * c) / 3) ** (1 / 1.6075))


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly evenly spread unit vectors, shape ``(n, 3)`` (deterministic)."""
    i = np.arange(n, dtype=float) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(np.maximum(1.0 - z * z, 0.0))
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid with semi-axes ``radii`` (mm) along the columns of ``rotation``.

    The SDF is Quilez's bound ``k0 (k0 - 1) / k1`` (exact on the surface; outside its
    gradient stays below about 1.15 for axis ratios up to 2.5), clamped inside to the
    largest possible depth ``r_max (1 - k0)`` so that its gradient there stays below the
    axis ratio. Anchors: ``u`` = unit direction, mapped to ``centre + R (radii * u)``.
    """

    centre: np.ndarray
    radii: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "centre", _vec(self.centre))
        object.__setattr__(self, "radii", _vec(self.radii))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, float).reshape(3, 3))
        object.__setattr__(self, "_rotated", not np.array_equal(self.rotation, np.eye(3)))

    def _local(self, p: np.ndarray) -> np.ndarray:
        q = p - _col(self.centre, p.dtype)
        if self._rotated:  # type: ignore[attr-defined]
            q = self.rotation.T.astype(p.dtype) @ q
        return q

    def __call__(self, p: np.ndarray) -> np.ndarray:
        q = self._local(p)
        i0, i1, i2 = (1.0 / float(r) for r in self.radii)
        x0, y0, z0 = q[0] * i0, q[1] * i1, q[2] * i2
        k0 = np.sqrt(x0 * x0 + y0 * y0 + z0 * z0)
        x0 *= i0
        y0 *= i1
        z0 *= i2
        k1 = np.sqrt(x0 * x0 + y0 * y0 + z0 * z0)
        # k0 / k1 lies in [r_min, r_max]; at the centre (0 / 0) it is taken as r_min
        k0 = np.maximum(k0, 1e-20 * float(self.radii.min()))
        k1 = np.maximum(k1, 1e-20)
        d = k0 * (k0 - 1.0) / k1
        # inside, the bound overshoots; the depth is at most r_max (1 - k0), whose
        # gradient is at most r_max / r_min
        return np.maximum(d, (k0 - 1.0) * float(self.radii.max()))

    def anchor(self, u: np.ndarray) -> np.ndarray:
        """Surface points ``(3, M)`` of unit directions ``u`` ``(M, 3)``."""
        return self.rotation @ (np.asarray(u, float) * self.radii).T + self.centre[:, None]

    def anchor_candidates(self, n: int) -> np.ndarray:
        """Evenly spread directions ``(n, 3)``."""
        return fibonacci_sphere(n)

    def area(self) -> float:
        """Surface area (mm^2), Knud Thomsen's approximation."""
        return _ellipsoid_area(self.radii)

    def bounds(self) -> list[tuple[np.ndarray, float]]:
        return [(self.centre, float(self.radii.max()))]


@dataclass(frozen=True)
class Sphere(Ellipsoid):
    """Sphere (exact SDF); construct with ``Sphere.make(centre, radius)``."""

    @staticmethod
    def make(centre: object, radius: float) -> Sphere:
        return Sphere(centre, np.full(3, float(radius)))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        d = p - _col(self.centre, p.dtype)
        return np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) - float(self.radii[0])


@dataclass(frozen=True)
class Capsule:
    """Capsule (exact SDF): points within ``radius`` mm of the segment ``a``-``b``.

    Anchors: ``u = (t, cos psi, sin psi)``, the point ``a + t (b - a) + radius (cos psi e1 +
    sin psi e2)`` on the cylindrical part, with ``e1``, ``e2`` a fixed frame around the axis.
    """

    a: np.ndarray
    b: np.ndarray
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", _vec(self.a))
        object.__setattr__(self, "b", _vec(self.b))
        object.__setattr__(self, "radius", float(self.radius))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        ba = self.b - self.a
        inv = 1.0 / float(np.dot(ba, ba))
        pa = p - _col(self.a, p.dtype)
        bx, by, bz = (float(c) for c in ba)
        h = np.clip((pa[0] * bx + pa[1] * by + pa[2] * bz) * inv, 0.0, 1.0)
        dx, dy, dz = pa[0] - h * bx, pa[1] - h * by, pa[2] - h * bz
        return np.sqrt(dx * dx + dy * dy + dz * dz) - self.radius

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit axis ``w`` and two unit vectors ``e1``, ``e2`` orthogonal to it."""
        w = (self.b - self.a) / np.linalg.norm(self.b - self.a)
        ref = np.array([1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(w, ref)
        e1 /= np.linalg.norm(e1)
        return w, e1, np.cross(w, e1)

    def anchor(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, float)
        _, e1, e2 = self.axes()
        axis = self.a[:, None] + np.outer(self.b - self.a, u[:, 0])
        return axis + self.radius * (np.outer(e1, u[:, 1]) + np.outer(e2, u[:, 2]))

    def anchor_candidates(self, n: int) -> np.ndarray:
        length = float(np.linalg.norm(self.b - self.a))
        circ = 2.0 * np.pi * self.radius
        n_t = max(round(float(np.sqrt(n * length / circ))), 2)
        n_psi = max(n // n_t, 4)
        t, psi = np.meshgrid(np.linspace(0.0, 1.0, n_t), np.arange(n_psi) * 2 * np.pi / n_psi)
        return np.column_stack([t.ravel(), np.cos(psi.ravel()), np.sin(psi.ravel())])

    def area(self) -> float:
        """Area (mm^2) of the cylindrical part."""
        return 2 * np.pi * self.radius * float(np.linalg.norm(self.b - self.a))

    def bounds(self) -> list[tuple[np.ndarray, float]]:
        return [(self.a, self.radius), (self.b, self.radius)]


@dataclass(frozen=True)
class RoundBox:
    """Box with outer half-extents ``half`` (mm) and edges rounded by ``rounding`` (exact).

    Anchors: ``u`` = unit direction, mapped to the box surface along ``u / max|u / half|``.
    """

    centre: np.ndarray
    half: np.ndarray
    rounding: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "centre", _vec(self.centre))
        object.__setattr__(self, "half", _vec(self.half))
        object.__setattr__(self, "rounding", float(self.rounding))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, float).reshape(3, 3))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        q = self.rotation.T.astype(p.dtype) @ (p - _col(self.centre, p.dtype))
        r = self.rounding
        qx, qy, qz = (np.abs(q[a]) - float(self.half[a] - r) for a in range(3))
        mx, my, mz = np.maximum(qx, 0.0), np.maximum(qy, 0.0), np.maximum(qz, 0.0)
        outside = np.sqrt(mx * mx + my * my + mz * mz)
        inside = np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0.0)
        return outside + inside - r

    def anchor(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, float)
        scale = 1.0 / np.max(np.abs(u) / self.half, axis=1)
        return self.rotation @ (u * scale[:, None]).T + self.centre[:, None]

    def anchor_candidates(self, n: int) -> np.ndarray:
        return fibonacci_sphere(n)

    def area(self) -> float:
        """Surface area (mm^2) of the box without rounding."""
        x, y, z = 2 * self.half
        return float(2 * (x * y + y * z + z * x))

    def bounds(self) -> list[tuple[np.ndarray, float]]:
        return [(self.centre, float(np.linalg.norm(self.half)))]


@dataclass(frozen=True)
class EllipticCylinder:
    """Infinite cylinder along local z with elliptic cross-section ``radii`` (x, y), mm.

    The SDF is the 2D ellipse bound of Quilez (exact on the surface).
    """

    centre: np.ndarray
    radii: tuple[float, float]
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "centre", _vec(self.centre))
        object.__setattr__(self, "radii", (float(self.radii[0]), float(self.radii[1])))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, float).reshape(3, 3))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        rt = self.rotation.T.astype(p.dtype)[:2]
        q = rt @ (p - _col(self.centre, p.dtype))
        rx, ry = self.radii
        x0, y0 = q[0] * (1.0 / rx), q[1] * (1.0 / ry)
        k0 = np.sqrt(x0 * x0 + y0 * y0)
        x1, y1 = x0 * (1.0 / rx), y0 * (1.0 / ry)
        k1 = np.maximum(np.sqrt(x1 * x1 + y1 * y1), 1e-20)
        k0 = np.maximum(k0, 1e-20 * min(rx, ry))
        return np.maximum(k0 * (k0 - 1.0) / k1, (k0 - 1.0) * max(rx, ry))


@dataclass(frozen=True)
class EllipticPlate:
    """Rounded elliptic plate: points within ``rounding`` mm of a flat filled ellipse.

    The ellipse has semi-axes ``radii`` (mm) along the first two columns of ``rotation``
    (the plate's normal is the third); total semi-axes are ``radii + rounding``. Exact
    up to the 2D ellipse bound. Anchors as for an ellipsoid of semi-axes
    ``(radii[0] + rounding, radii[1] + rounding, rounding)``.
    """

    centre: np.ndarray
    radii: tuple[float, float]
    rounding: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "centre", _vec(self.centre))
        object.__setattr__(self, "radii", (float(self.radii[0]), float(self.radii[1])))
        object.__setattr__(self, "rounding", float(self.rounding))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, float).reshape(3, 3))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        q = self.rotation.T.astype(p.dtype) @ (p - _col(self.centre, p.dtype))
        e2 = EllipticCylinder(np.zeros(3), self.radii)(q)
        e2 = np.maximum(e2, 0.0)
        return np.sqrt(e2 * e2 + q[2] * q[2]) - self.rounding

    def _outer(self) -> Ellipsoid:
        a, b = self.radii
        r = self.rounding
        return Ellipsoid(self.centre, (a + r, b + r, r), self.rotation)

    def anchor(self, u: np.ndarray) -> np.ndarray:
        return self._outer().anchor(u)

    def anchor_candidates(self, n: int) -> np.ndarray:
        return fibonacci_sphere(n)

    def area(self) -> float:
        """Surface area (mm^2) of the equivalent ellipsoid."""
        return self._outer().area()

    def bounds(self) -> list[tuple[np.ndarray, float]]:
        return [(self.centre, max(self.radii) + self.rounding)]

"""Small binary shapes with known mappings for registration tests."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mskseg.volume import Volume
from tests.conftest import ROTATED

SPACING = (1.2, 1.0, 1.4)
ORIGIN = (-20.0, 15.0, 40.0)


def grid_points(shape, spacing=SPACING, origin=ORIGIN, direction=ROTATED) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    vol = Volume(np.zeros(shape, np.uint8), spacing, origin, direction)
    return vol.index_to_world(idx.astype(float)).reshape(*shape, 3)


def bone(points: np.ndarray, centre: np.ndarray, bump: float = 4.0) -> np.ndarray:
    """A knobbly ellipsoid (semi-axes 14, 10, 8 mm) with a bump of ``bump`` mm on one side."""
    q = points - centre
    r = (q[..., 0] / 14.0) ** 2 + (q[..., 1] / 10.0) ** 2 + (q[..., 2] / 8.0) ** 2
    body = r < 1.0
    b = np.linalg.norm(q - np.array([10.0, 6.0, 0.0]), axis=-1) < bump
    return body | b


def smooth_displacement(points: np.ndarray, amplitude: float = 1.5) -> np.ndarray:
    """A smooth, small displacement (mm) of world points."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return amplitude * np.stack([np.sin(y / 9.0), np.cos(z / 11.0), np.sin(x / 13.0)], axis=-1)


def known_affine() -> np.ndarray:
    """4 x 4: a rotation of 8 degrees, scaling 1.06 and a translation of a few mm."""
    a = np.deg2rad(8.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = 1.06 * rot
    m[:3, 3] = [3.0, -2.0, 1.5]
    return m


def apply4(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m[:3, :3].T + m[:3, 3]


def pair_with_known_mapping(shape=(40, 44, 30), deform: bool = True):
    """(fixed, moving, true_map): moving is fixed deformed so that ``moving(T(x)) = fixed(x)``.

    ``true_map(x) = M (x + u(x))`` maps fixed points to moving points. The moving mask is
    made by inverting the mapping numerically on the moving grid (fixed-point iteration).
    """
    pts = grid_points(shape)
    centre = pts.reshape(-1, 3).mean(axis=0)
    fixed = Volume(bone(pts, centre).astype(np.uint8), SPACING, ORIGIN, ROTATED)
    m = known_affine()
    minv = np.linalg.inv(m)
    amp = 1.5 if deform else 0.0

    def true_map(x: np.ndarray) -> np.ndarray:
        return apply4(m, x + smooth_displacement(x, amp))

    # moving voxel y belongs to the shape where its pre-image x = T^-1(y) is inside the fixed shape
    z = apply4(minv, pts)  # = x + u(x)
    x = z.copy()
    for _ in range(30):
        x = z - smooth_displacement(x, amp)
    moving = Volume(bone(x, centre).astype(np.uint8), SPACING, ORIGIN, ROTATED)
    return fixed, moving, true_map, centre


def to_image(volume: Volume) -> sitk.Image:
    from mskseg.io.volumes import to_sitk

    return sitk.Cast(to_sitk(volume), sitk.sitkFloat32)

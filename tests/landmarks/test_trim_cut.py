"""Reference landmarks of a trimmed bone: none on the trim's cut, the rest of the surface still covered."""

from __future__ import annotations

import numpy as np
import pytest

from mskseg.landmarks.correspondence import interior_faces, sample_reference, uncut_faces
from mskseg.landmarks.surface import mask_surface, surface_distance
from mskseg.registration.trim import TrimSpec, cut_margin_mm, index_steps_mm, point_depths, trim_structure
from mskseg.volume import Volume
from tests.conftest import ROTATED

SPACING = (1.2, 1.0, 1.4)
LENGTH_MM = 17.3


def _tilted() -> np.ndarray:
    a = np.deg2rad(25.0)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return rx @ ROTATED


DIRECTIONS = {"rotated": ROTATED, "tilted": _tilted()}


def _bar(direction: np.ndarray) -> Volume:
    """A round bar along world z (radius 5 mm, 34 mm long, a rounded inferior end) in the middle of the grid."""
    shape = (20, 50, 20)
    probe = Volume(np.zeros(shape, np.uint8), SPACING, (0.0, 0.0, 0.0), direction)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world = probe.index_to_world(idx.astype(float))
    centre = world.mean(axis=0)
    q = world - centre
    below = q[:, 2] + 17.0  # the rounded end's centre is 17 mm below the middle
    inside = (np.hypot(q[:, 0], q[:, 1]) < 5.0) & (below >= 0) & (q[:, 2] < 17.0)
    inside |= np.linalg.norm(q - [0.0, 0.0, -17.0], axis=1) < 5.0
    return probe.with_array(inside.reshape(shape).astype(np.uint8))


def _cut_interface(bone: Volume, kept: Volume) -> np.ndarray:
    """Midpoints (world mm) between face-neighbouring voxels the trim kept and removed: the cut."""
    removed = (bone.array > 0) & (kept.array == 0)
    mids = []
    for axis in range(3):
        for a, b in ((kept.array > 0, removed), (removed, kept.array > 0)):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis], hi[axis] = slice(0, -1), slice(1, None)
            pairs = np.argwhere(a[tuple(lo)] & b[tuple(hi)]).astype(float)
            pairs[:, axis] += 0.5
            mids.append(bone.index_to_world(pairs))
    return np.concatenate(mids)


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_no_reference_landmark_on_the_cut(direction) -> None:
    bone = _bar(direction)
    spec = TrimSpec(LENGTH_MM, "inferior")
    trimmed = trim_structure(bone, spec).mask
    cut = _cut_interface(bone, trimmed)
    assert len(cut) > 20
    step = float(np.abs(index_steps_mm(bone, spec)).max())
    points = sample_reference(trimmed, 150, seed=0, trim=spec)
    assert surface_distance(points, trimmed).max() < 1e-6  # on the (trimmed) surface
    # ... and on the bone's own surface: anatomy, not the cut (a point of the cut lies inside the bone)
    assert surface_distance(points, bone).max() < 1e-6
    gaps = np.linalg.norm(points[:, None, :] - cut[None, :, :], axis=-1).min(axis=1)
    assert gaps.min() >= 0.25 * step - 1e-9
    depth = point_depths(points, trimmed, spec)
    assert depth.max() <= LENGTH_MM - cut_margin_mm(trimmed, spec) + 1e-9
    assert depth.max() > LENGTH_MM - 3 * step  # the shaft's side is sampled up to the cut
    assert depth.min() < 0.5  # and down to the joint end
    # without the trim the cut would be sampled: points inside the bone, on the flat new end
    plain = sample_reference(trimmed, 150, seed=0)
    assert (surface_distance(plain, bone) > 0.5).sum() >= 3


def test_uncut_faces_keep_all_but_the_cut_and_one_ring() -> None:
    bone = _bar(ROTATED)  # SI along index axis 1 (1.0 mm): the cut is one index plane
    spec = TrimSpec(LENGTH_MM, "inferior")
    trimmed = trim_structure(bone, spec).mask
    vertices, faces = mask_surface(trimmed)
    kept = uncut_faces(vertices, interior_faces(vertices, faces, trimmed), trimmed, spec)
    depth = point_depths(vertices, trimmed, spec)
    cap = np.isclose(depth[faces], depth.max()).all(axis=1)  # the flat cut
    assert cap.sum() > 20
    kept_set = {tuple(f) for f in kept}
    assert not any(tuple(f) in kept_set for f in faces[cap])
    # dropped: the faces with a vertex deeper than the length less the margin, all within 1.5 voxels of the cut
    dropped = np.array([f for f in faces if tuple(f) not in kept_set])
    assert (depth[dropped].max(axis=1) > LENGTH_MM - 0.75).all()
    assert depth[dropped].min() >= depth.max() - 1.5 - 1e-9
    assert len(kept) > 0.8 * len(faces)

"""Anatomy: cartilage thickness, joint gaps, left/right symmetry, resolution independence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from synth_testutils import block_mode, contacts, dice, subject

from mskseg.synthetic import LABELS
from mskseg.synthetic.generate import build_model, render_subject, subject_params

FINE = (0.4, 0.4, 0.4)


def _knee_crop(index: int, side: float):
    """A 0.4 mm crop around one tibiofemoral compartment (side +1 medial, -1 lateral)."""
    params = subject_params("knee", index)
    model = build_model(params)
    centre = model.pose.to_world(np.array([[side * 25.0], [0.0], [8.0]]))[:, 0]
    return render_subject(params, (75, 110, 140), FINE, tuple(centre))[1].array


@pytest.fixture(scope="module")
def knee_crops():
    return [_knee_crop(i, s) for i, s in ((0, 1.0), (1, -1.0), (2, 1.0))]


def _outer_thickness(labels: np.ndarray, cart: int, bone: int) -> np.ndarray:
    """Distance (mm) from each outer-surface cartilage voxel to the nearest bone voxel."""
    c = labels == cart
    other = np.pad((labels != cart) & (labels != bone), 1)
    touching = np.zeros_like(c)
    for ax in range(3):
        for sh in (-1, 1):
            touching |= np.roll(other, sh, axis=ax)[1:-1, 1:-1, 1:-1]
    inner = np.zeros_like(c)
    inner[1:-1, 1:-1, 1:-1] = True  # ignore the crop's faces
    d = ndimage.distance_transform_edt(labels != bone, sampling=FINE)
    return d[c & touching & inner]


@pytest.mark.parametrize("cart,bone", [(2, 1), (4, 3)])
def test_cartilage_thickness(knee_crops, cart, bone):
    for labels in knee_crops:
        t = _outer_thickness(labels, cart, bone)
        assert t.size > 500
        assert 1.2 <= np.median(t) <= 3.5
        assert np.percentile(t, 95) <= 3.5
        assert np.percentile(t, 75) >= 1.2


def test_knee_joint_gap(knee_crops):
    for labels in knee_crops:
        for a, b in ((2, 4), (1, 3), (1, 4), (2, 3)):
            assert contacts(labels, a, b) == 0, (a, b)
        # but the cartilages come close: within a few voxels of each other
        d = ndimage.distance_transform_edt(labels != 2, sampling=FINE)
        assert d[labels == 4].min() <= 1.6


def test_cartilage_outside_bone():
    s = subject("knee", 0)
    lab = s.mask.array
    # femoral cartilage touches the femur, tibial cartilage touches the tibia
    assert contacts(lab, 1, 2) > 50 and contacts(lab, 3, 4) > 20


@pytest.mark.parametrize("index", [0, 1])
def test_hip_joint_gaps(index):
    lab = subject("hip", index).mask.array
    h = LABELS["hip"]
    # at the demo spacing (3.0, 2.6, 2.6) mm the 3.2-4 mm joint gaps and the symphysis stay open
    for a, b in [("femur_left", "hip_left"), ("femur_right", "hip_right"), ("hip_left", "hip_right")]:
        assert contacts(lab, h[a], h[b]) == 0, (a, b)
    # the femoral head sits in the acetabulum: the gap is narrow
    d = ndimage.distance_transform_edt(lab != h["hip_left"], sampling=(3.0, 2.6, 2.6))
    assert d[lab == h["femur_left"]].min() <= 6.0


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_sacroiliac_gap_on_fine_grid(side):
    params = subject_params("hip", 2)
    model = build_model(params)
    centre = model.pose.to_world(np.array([[side * 38.0], [52.0], [44.0]]))[:, 0]
    lab = render_subject(params, (40, 50, 60), (0.8, 0.8, 0.8), tuple(centre))[1].array
    hip = LABELS["hip"]["hip_left" if side > 0 else "hip_right"]
    assert (lab == hip).sum() > 100 and (lab == LABELS["hip"]["sacrum"]).sum() > 100
    assert contacts(lab, hip, LABELS["hip"]["sacrum"]) == 0


def _mirror_dice(s) -> float:
    """Dice of the right femur and the left femur mirrored about the body's midplane."""
    model = build_model(s.params)
    lab = s.mask.array
    idx = np.indices(lab.shape).reshape(3, -1).T
    world = s.mask.index_to_world(idx).T
    anat = model.pose.to_local(world)
    anat[0] *= -1
    mirrored = s.mask.world_to_index(model.pose.to_world(anat).T).T
    left = ndimage.map_coordinates((lab == 1).astype(np.uint8), mirrored, order=0, cval=0)
    return dice(left.reshape(lab.shape) > 0, lab == 2)


@pytest.mark.parametrize("index", [0, 3])
def test_hip_left_right_symmetry(index):
    s = subject("hip", index)
    assert _mirror_dice(s) > 0.8
    a = s.params["anatomy"]
    assert a["left"] != a["right"]  # small independent variation per side


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_same_anatomy_at_two_resolutions(kind):
    fine = subject(kind, 1)
    shape = tuple(n // 2 for n in fine.mask.shape)
    spacing = tuple(2 * x for x in fine.mask.spacing)
    coarse = subject(kind, 1, shape=shape, spacing=spacing, n_landmarks=20)
    down = block_mode(fine.mask.array)
    bones = {"knee": ("femur", "tibia"), "hip": ("femur_left", "femur_right", "hip_left", "hip_right", "sacrum"),
             "ankle": ("tibia", "talus", "calcaneus")}
    for name in bones[kind]:
        v = LABELS[kind][name]
        assert dice(down == v, coarse.mask.array == v) > 0.8, name

"""The ankle MRI phantom: labels, exact joint gaps, anatomy, variation, landmarks, poor labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree
from synth_testutils import contacts, dice, subject, surface

from mskseg.synthetic import LABELS, generate_subject
from mskseg.synthetic.ankle import (
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    DIRECTION,
    LANDMARK_STRUCTURES,
    AnkleModel,
    sample_anatomy,
    sample_appearance,
)
from mskseg.synthetic.generate import DEGRADE, build_model, subject_params

ANKLE = LABELS["ankle"]
PAIRS = (("tibia", "talus"), ("talus", "calcaneus"), ("tibia", "calcaneus"))
SMALL = ((28, 42, 42), (3.6, 3.5, 3.5))


def _min_distance_edt(lab: np.ndarray, a: int, b: int, spacing: tuple) -> float:
    """Smallest distance (mm) between voxel centres labelled ``a`` and ``b`` (distance transform)."""
    d = ndimage.distance_transform_edt(lab != b, sampling=spacing)
    return float(d[lab == a].min())


def _min_distance_brute(lab: np.ndarray, a: int, b: int, spacing: tuple) -> float:
    """The same by brute force over all pairs of surface voxels."""
    pa = np.argwhere(surface(lab == a)) * np.asarray(spacing)
    pb = np.argwhere(surface(lab == b)) * np.asarray(spacing)
    best = np.inf
    for chunk in np.array_split(pa, max(len(pa) // 500, 1)):
        best = min(best, float(np.sqrt(((chunk[:, None] - pb[None]) ** 2).sum(axis=2).min())))
    return best


def test_constants_and_labels():
    assert ANKLE == {"tibia": 1, "talus": 2, "calcaneus": 3}
    assert LANDMARK_STRUCTURES == ("tibia", "talus", "calcaneus")
    s = subject("ankle", 0)
    assert s.image.shape == DEFAULT_SHAPE and s.image.spacing == DEFAULT_SPACING
    assert np.array_equal(s.image.direction, DIRECTION) and np.isclose(np.linalg.det(DIRECTION), 1.0)
    lab = s.mask.array
    assert set(np.unique(lab).tolist()) == {0, 1, 2, 3}
    counts = {k: int((lab == v).sum()) for k, v in ANKLE.items()}
    assert all(n > 1500 for n in counts.values()), counts
    assert s.params["kind"] == "ankle"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_joint_gaps_on_default_grid(index):
    s = subject("ankle", index)
    lab, sp = s.mask.array, s.mask.spacing
    a = s.params["anatomy"]
    gap = {("tibia", "talus"): a["tibiotalar_gap"], ("talus", "calcaneus"): a["subtalar_gap"]}
    voxel = max(sp)
    for x, y in PAIRS:
        assert contacts(lab, ANKLE[x], ANKLE[y]) == 0, (x, y)
        d = _min_distance_edt(lab, ANKLE[x], ANKLE[y], sp)
        assert d == pytest.approx(_min_distance_brute(lab, ANKLE[x], ANKLE[y], sp), abs=1e-9)
        if (x, y) in gap:
            # the gap is real (never closed) and the joint surfaces face each other across it
            assert gap[(x, y)] - voxel <= d <= gap[(x, y)] + 2 * voxel, (x, y, d)
        else:
            assert d > 10.0  # tibia and calcaneus have no joint


def _fine_points(model: AnkleModel, frame, centre, half, h: float) -> np.ndarray:
    """World points (float64) of a grid of step ``h`` mm, ``centre +- half`` in a model frame."""
    axes = [np.arange(c - w, c + w + 1e-9, h) for c, w in zip(centre, half, strict=True)]
    g = np.stack([x.ravel() for x in np.meshgrid(*axes, indexing="ij")])
    return frame.to_world(g)


@pytest.mark.parametrize("index", [None, 0, 5])
def test_gaps_are_exact_on_a_fine_grid(index):
    """Brute force on a 0.4 mm point grid: sampled bone points keep at least the gap apart, and
    across the joint they come within the grid's resolution of it."""
    if index is None:
        model = AnkleModel(sample_anatomy(None), sample_appearance(None))
    else:
        model = build_model(subject_params("ankle", index))
    h = 0.4
    foot_c = model.calc_in_foot.translation
    joints = [
        ("tibia", model.gap_tt, _fine_points(model, model.pose, (0.0, 0.0, model.R), (9.0, 9.0, 5.0), h)),
        ("calcaneus", model.gap_st, _fine_points(model, model.foot_frame, foot_c, (8.0, 8.0, 5.0), h)),
    ]
    for name, gap, pts in joints:
        talus = pts[:, model.structure_sdf("talus", pts) <= 0]
        other = pts[:, model.structure_sdf(name, pts) <= 0]
        assert talus.shape[1] > 1000 and other.shape[1] > 1000, name
        d = cKDTree(talus.T).query(other.T)[0].min()
        assert gap - 1e-9 <= d <= gap + np.sqrt(3) * h, (name, gap, d)


def test_mean_anatomy():
    a = sample_anatomy(None)
    assert a == sample_anatomy(None)
    assert a["scale"] == 1.0 and a["dome_radius"] == 20.0 and a["calcaneus_scale"] == 1.0
    assert a["tibiotalar_gap"] == pytest.approx(3.0) and a["subtalar_gap"] == pytest.approx(2.4)
    assert a["plantarflexion_deg"] == pytest.approx(5.0) and a["calcaneal_pitch_deg"] == pytest.approx(20.0)
    assert a["pose"] == {"rotation_deg": [0.0, 0.0, 0.0], "translation_mm": [0.0, 0.0, 0.0]}
    model = AnkleModel(a, sample_appearance(None))
    # the dome's apex lies on the anatomical z axis at the dome radius, the plafond one gap above it
    apex = np.array([[0.0, 0.0], [0.0, 0.0], [20.0, 23.0]])
    assert np.allclose(model.structure_sdf("talus", apex), [0.0, 3.0], atol=1e-9)
    assert np.allclose(model.structure_sdf("tibia", apex), [3.0, 0.0], atol=1e-9)


def test_anatomy_is_plausible():
    """Bones in their places (anatomical frame): tibia on top with a medial malleolus, the talar head
    anterior, the calcaneal tuberosity posterior and lowest."""
    s = subject("ankle", 0)
    model = build_model(s.params)
    lab = s.mask.array
    q = {}
    for name, v in ANKLE.items():
        idx = np.argwhere(lab == v)
        q[name] = model.pose.to_local(s.mask.index_to_world(idx).T)
    z = {k: np.median(v[2]) for k, v in q.items()}
    assert z["tibia"] > z["talus"] > z["calcaneus"]
    assert q["talus"][1].min() < q["tibia"][1].min() - 10  # talar head and neck point anterior (-y)
    assert q["calcaneus"][1].max() > q["talus"][1].max() + 15  # the heel sticks out posteriorly (+y)
    assert q["calcaneus"][2].min() < q["talus"][2].min() - 5  # the heel is the lowest bone
    t = q["tibia"]
    malleolus = (t[0] > model.hw) & (t[2] < model.R)  # medial (+x), beside the talar dome
    assert malleolus.sum() > 20
    assert not ((t[0] < -model.hw) & (t[2] < model.R - 5.0)).any()  # laterally the (unlabelled) fibula


def test_variation_between_subjects():
    params = [subject_params("ankle", i)["anatomy"] for i in range(12)]
    scalars = [k for k, v in params[0].items() if isinstance(v, float)]
    assert len(scalars) >= 15
    for k in scalars:
        assert len({p[k] for p in params}) == len(params), k
    for p in params:
        assert 2.6 <= p["tibiotalar_gap"] <= 3.4 and 2.0 <= p["subtalar_gap"] <= 2.8
    a = generate_subject("ankle", 0, seed=1, shape=SMALL[0], spacing=SMALL[1], n_landmarks=10)
    b = generate_subject("ankle", 0, seed=1, shape=SMALL[0], spacing=SMALL[1], n_landmarks=10)
    c = generate_subject("ankle", 0, seed=2, shape=SMALL[0], spacing=SMALL[1], n_landmarks=10)
    assert np.array_equal(a.image.array, b.image.array) and np.array_equal(a.mask.array, b.mask.array)
    assert a.landmarks.equals(b.landmarks) and a.params == b.params
    assert c.params["anatomy"] != a.params["anatomy"]
    assert not np.array_equal(a.mask.array, c.mask.array) and not np.array_equal(a.image.array, c.image.array)


def test_intensities_are_mr_like():
    s = subject("ankle", 1)
    img, lab = s.image.array, s.mask.array
    assert img.min() >= 0 and 600 < img.max() < 2000
    # the joint space (cartilage, fluid) is bright between dark fat-suppressed marrow
    d_tib = ndimage.distance_transform_edt(lab != ANKLE["tibia"], sampling=s.mask.spacing)
    d_tal = ndimage.distance_transform_edt(lab != ANKLE["talus"], sampling=s.mask.spacing)
    joint = (lab == 0) & (d_tib < 3.0) & (d_tal < 3.0)
    assert joint.sum() > 20
    assert np.median(img[joint]) > 2 * np.median(img[lab == ANKLE["talus"]])


@pytest.mark.parametrize("index", [0, 1])
def test_true_landmarks_lie_on_their_surfaces(index):
    s = subject("ankle", index)
    model = build_model(s.params)
    for st in LANDMARK_STRUCTURES:
        pts = s.landmarks[s.landmarks.structure == st][["x", "y", "z"]].to_numpy().T
        assert pts.shape[1] == 200
        assert np.abs(model.structure_sdf(st, pts)).max() < 1e-6, st
        # and on the label map's surface, inside the field of view
        idx = np.rint(s.mask.world_to_index(pts.T)).astype(int)
        assert ((idx >= 0) & (idx < np.array(DEFAULT_SHAPE))).all(), st
        d = ndimage.distance_transform_edt(~surface(s.mask.array == ANKLE[st]), sampling=DEFAULT_SPACING)
        assert np.median(d[tuple(idx.T)]) < max(DEFAULT_SPACING), st


def test_poor_labels_close_the_ankle_joint_gaps():
    for index in (0, 1):
        s = subject("ankle", index, poor_labels=True)
        lab, poor = s.mask.array, s.poor_mask.array
        assert s.params["degrade"]["gap_mm"] == DEGRADE["ankle"]["gap_mm"]
        for x, y in PAIRS[:2]:
            assert contacts(lab, ANKLE[x], ANKLE[y]) == 0
            assert contacts(poor, ANKLE[x], ANKLE[y]) > 20, (index, x, y)
        for v in ANKLE.values():
            assert dice(lab == v, poor == v) > 0.7

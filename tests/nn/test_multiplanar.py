"""Multi-planar (MPUNet) view sampling: views, plane geometry, dataset, inference mapping back."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mskseg.nn.losses import get_loss  # noqa: E402
from mskseg.nn.models import build_model  # noqa: E402
from mskseg.nn.multiplanar import (  # noqa: E402
    MultiPlanarCase,
    MultiPlanarDataset,
    PlaneGrid,
    draw_views,
    inference_grid,
    physical_extents,
    plane_coordinates,
    predict_multiplanar,
    prediction_grid,
    sample_plane,
    sphere_span,
    training_grid,
    view_basis,
)
from mskseg.volume import Volume  # noqa: E402

SHAPE = (16, 20, 24)
SPACING = (1.0, 1.5, 2.0)


def _rotation(axis, angle_deg: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = math.radians(angle_deg)
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


OBLIQUE = _rotation((1.0, 2.0, 0.5), 35.0)


def _ellipsoid(shape=SHAPE, spacing=SPACING) -> np.ndarray:
    """An off-centre ellipsoid (semi-axes 5, 7, 11 mm in the index frame scaled by spacing)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    mm = (idx - (np.asarray(shape) - 1) / 2) * np.asarray(spacing)
    rel = (mm - np.array([1.5, -3.0, 4.0])) / np.array([5.0, 7.0, 11.0])
    return (np.sum(rel**2, axis=-1) <= 1.0).astype(np.float32)


def _threshold_model() -> torch.nn.Module:
    """A 1x1 conv: logit 1 - logit 0 = 50 (x - 0.5), i.e. one-hot of (x > 0.5) up to a soft edge."""
    conv = torch.nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 50.0]).reshape(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -25.0]))
    return conv


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float(np.sum(a & b)) / float(a.sum() + b.sum())


# ------------------------------------------------------------------------------------- views
def test_draw_views_unit_seeded_separated_and_impossible_raises() -> None:
    v = draw_views(6, seed=3, min_angle_deg=30)
    assert v.shape == (6, 3)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
    assert np.array_equal(v, draw_views(6, seed=3, min_angle_deg=30))
    assert not np.allclose(v, draw_views(6, seed=4, min_angle_deg=30))
    cos = np.abs(v @ v.T)[np.triu_indices(6, 1)]
    assert np.all(np.degrees(np.arccos(np.clip(cos, 0, 1))) >= 30 - 1e-9)
    with pytest.raises(ValueError, match="could not draw"):
        draw_views(10, seed=0, min_angle_deg=80)
    with pytest.raises(ValueError):
        draw_views(0, seed=0)


def test_view_basis_orthonormal_right_handed() -> None:
    for normal in [(0, 0, 1), (1, 0, 0), (0, -2, 0), (0.3, -0.7, 0.2), *draw_views(4, seed=1)]:
        b = view_basis(np.asarray(normal, float))
        assert np.allclose(b @ b.T, np.eye(3))
        assert np.isclose(np.linalg.det(b), 1.0)
        assert np.allclose(b[2], np.asarray(normal) / np.linalg.norm(normal))
    assert np.allclose(view_basis(np.array([0, 0, 1.0])), np.eye(3))  # n = z: u = x, v = y
    with pytest.raises(ValueError):
        view_basis(np.zeros(3))


# -------------------------------------------------------------------------------- plane geometry
def test_axis_aligned_plane_reproduces_central_slice_offset_and_rotation() -> None:
    arr = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    grid = PlaneGrid(16, 1.0)
    basis = view_basis(np.array([0.0, 0.0, 1.0]))  # u = +x (H), v = +y (W)
    # centre k = 11.5: offset 0.5 mm is slice 12; H = x 0..15, W = y 2..17 (dim 16 centred in 20)
    coords = plane_coordinates(SHAPE, (1, 1, 1), np.eye(3), basis, grid, 0.5)
    plane = sample_plane(arr, coords, order=1, cval=0.0)
    assert np.allclose(plane, arr[:, 2:18, 12], atol=1e-5)
    moved = sample_plane(arr, plane_coordinates(SHAPE, (1, 1, 1), np.eye(3), basis, grid, 3.5), order=1, cval=0)
    assert np.allclose(moved, arr[:, 2:18, 15], atol=1e-5)
    rows, cols = np.indices((16, 16))
    assert np.allclose(coords[0], rows) and np.allclose(coords[1], cols + 2) and np.allclose(coords[2], 12.0)
    rotated = sample_plane(arr, plane_coordinates(SHAPE, (1, 1, 1), np.eye(3), basis, grid, 0.5, math.pi / 2),
                           order=1, cval=0.0)
    assert np.allclose(rotated, np.rot90(plane, -1), atol=1e-5)
    # n = +x: u = +y (H), v = +z (W); n = +y: u = +x (H), v = -z (W)
    gx = PlaneGrid(20, 1.0)
    px = sample_plane(arr, plane_coordinates(SHAPE, (1, 1, 1), np.eye(3), view_basis(np.array([1.0, 0, 0])), gx,
                                             -2.5), order=1, cval=0.0)
    assert np.allclose(px, arr[5, :, 2:22], atol=1e-5)
    py = sample_plane(arr, plane_coordinates(SHAPE, (1, 1, 1), np.eye(3), view_basis(np.array([0, 1.0, 0])), gx,
                                             0.5), order=1, cval=0.0)
    assert np.allclose(py[2:18], arr[:, 10, 21:1:-1], atol=1e-5)


def test_non_identity_direction_gives_the_same_physical_plane() -> None:
    arr = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    # arr2[p, q, r] = arr[r, ny-1-p, q]: axis 0 runs along world -y, axis 1 along z, axis 2 along x
    arr2 = np.ascontiguousarray(arr.transpose(1, 2, 0)[::-1])
    d2 = np.array([[0.0, 0, 1], [-1, 0, 0], [0, 1, 0]])
    sp2 = (SPACING[1], SPACING[2], SPACING[0])
    grid = PlaneGrid(24, 1.3)
    for normal, offset, rot in [((0, 0, 1.0), 2.0, 0.3), ((0.4, -0.5, 0.77), -3.0, 1.2)]:
        basis = view_basis(np.asarray(normal))
        p1 = sample_plane(arr, plane_coordinates(SHAPE, SPACING, np.eye(3), basis, grid, offset, rot), order=1, cval=-9)
        p2 = sample_plane(arr2, plane_coordinates(arr2.shape, sp2, d2, basis, grid, offset, rot), order=1, cval=-9)
        assert np.allclose(p1, p2, atol=1e-5)


def test_plane_pixels_sit_at_their_world_positions() -> None:
    vol = Volume(np.zeros(SHAPE, np.float32), SPACING, (10.0, -4.0, 7.0), OBLIQUE)
    grid = PlaneGrid(16, 2.5)
    basis = view_basis(np.array([0.2, 0.9, -0.4]))
    rot, offset = 0.7, -4.0
    coords = plane_coordinates(SHAPE, SPACING, OBLIQUE, basis, grid, offset, rot)
    world = vol.index_to_world(coords.reshape(3, -1).T)
    centre = vol.index_to_world((np.asarray(SHAPE) - 1) / 2)
    u = math.cos(rot) * basis[0] + math.sin(rot) * basis[1]
    v = -math.sin(rot) * basis[0] + math.cos(rot) * basis[1]
    steps = (np.arange(16) - 7.5) * 2.5
    expected = offset * basis[2] + steps[:, None, None] * u + steps[None, :, None] * v
    assert np.allclose(world - centre, expected.reshape(-1, 3))


def test_sphere_span_and_grids() -> None:
    ext = physical_extents([((10, 20, 30), (1.0, 1.0, 2.0)), ((40, 10, 10), (0.5, 1.0, 1.0))])
    assert np.allclose(ext, [10, 20, 60, 20, 10, 10])
    assert sphere_span(ext) == pytest.approx(np.percentile(ext, 75)) == pytest.approx(20.0)
    assert sphere_span(ext, at="inference") == 60.0
    with pytest.raises(ValueError):
        sphere_span(ext, at="test")
    train = training_grid(20.0, 16)
    assert train.pixel_mm == pytest.approx(1.25) and train.span_mm == pytest.approx(20.0)
    infer = inference_grid(60.0, train.pixel_mm)
    assert infer.pixel_mm == train.pixel_mm and infer.dim == 48 and infer.span_mm >= 60.0
    assert inference_grid(61.0, 1.25).dim == 64


# ----------------------------------------------------------------------------------- dataset
IDENTITY = np.eye(3)


def _case(direction=IDENTITY, weight=True, three_classes=True) -> MultiPlanarCase:
    ell = _ellipsoid()
    image = (ell * 5.0 + np.random.default_rng(2).uniform(-3.0, -1.0, SHAPE)).astype(np.float32)
    target = ell.astype(np.int64) + three_classes * (np.indices(SHAPE)[0] > 12)  # classes 0, 1 (, 2)
    w = np.full(SHAPE, 2.0, np.float32) + ell if weight else None
    return MultiPlanarCase("c", image, target, w, SPACING, direction)


def test_dataset_items_shapes_determinism_and_padding() -> None:
    cases = [_case(), _case(OBLIQUE, weight=False)]
    views = draw_views(3, seed=0)
    grid = PlaneGrid(32, 3.0)  # span 96 mm >> the 59 mm diagonal: plane corners lie outside
    ds = MultiPlanarDataset(cases, views, grid, samples_per_epoch=6, seed=5)
    assert len(ds) == 6
    item = ds[0]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert item["target"].shape == (32, 32) and item["target"].dtype == torch.int64
    assert item["weight"].shape == (32, 32) and item["weight"].dtype == torch.float32
    assert item["sample_weight"].shape == () and float(item["sample_weight"]) == 1.0
    for i in range(6):
        it = ds[i]
        assert set(np.unique(it["target"].numpy())) <= {0, 1, 2}
        mins = [float(c.image.min()) for c in cases]
        assert float(it["image"][0, 0, 0]) in mins and int(it["target"][0, 0]) == 0
        assert float(it["weight"][0, 0]) == 1.0 and float(it["weight"].max()) <= 3.0
    again = MultiPlanarDataset(cases, views, grid, samples_per_epoch=6, seed=5)
    assert all(torch.equal(ds[3][k], again[3][k]) for k in item)
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["image"], again[3]["image"])
    ds.set_epoch(0)
    assert torch.equal(ds[3]["image"], again[3]["image"])
    with pytest.raises(ValueError, match="no target"):
        MultiPlanarDataset([MultiPlanarCase("x", cases[0].image)], views, grid, samples_per_epoch=1)


def test_dataset_augment_hook_gets_arrays_and_rng() -> None:
    seen = {}

    def augment(image, target, weight, rng):
        seen.update(image=image.shape, target=target.dtype, rng=isinstance(rng, np.random.Generator))
        return image * 0 + 7, target, weight, 1 / 3

    ds = MultiPlanarDataset([_case()], draw_views(2, seed=0), PlaneGrid(16, 2.0), samples_per_epoch=2,
                            augment=augment)
    item = ds[1]
    assert seen == {"image": (1, 16, 16), "target": np.int64, "rng": True}
    assert torch.all(item["image"] == 7) and float(item["sample_weight"]) == pytest.approx(1 / 3)


def _brute_force_item(ds: MultiPlanarDataset, index: int, rotation_draw) -> np.ndarray:
    """Item ``index``'s image redrawn by hand: the dataset's draws in its order, the rotation from
    ``rotation_draw(rng)`` (which must make exactly the dataset's generator call)."""
    rng = np.random.default_rng([ds.seed, ds.epoch, index])
    n_case = int(rng.integers(len(ds.cases)))
    basis = ds.bases[int(rng.integers(len(ds.bases)))]
    rotation = rotation_draw(rng)
    half = ds.max_offset_fraction * ds.grid.span_mm / 2.0
    offset = float(rng.uniform(-half, half))
    case = ds.cases[n_case]
    coords = plane_coordinates(case.image.shape, case.spacing, case.direction, basis, ds.grid, offset, rotation)
    return sample_plane(case.image, coords, order=1, cval=float(case.image.min()))[None]


def _mp_dataset(**kwargs) -> MultiPlanarDataset:
    return MultiPlanarDataset([_case(), _case(OBLIQUE, weight=False)], draw_views(3, seed=0), PlaneGrid(24, 2.0),
                              samples_per_epoch=8, seed=3, **kwargs)


def test_rotation_zero_samples_the_unrotated_plane() -> None:
    ds = _mp_dataset(max_rotation_deg=0)
    for i in range(8):
        expected = _brute_force_item(ds, i, lambda rng: (rng.uniform(), 0.0)[1])
        assert np.array_equal(ds[i]["image"].numpy(), expected)


def test_default_rotation_is_the_full_circle_draw_unchanged() -> None:
    ds, explicit = _mp_dataset(), _mp_dataset(max_rotation_deg=180)
    assert ds.max_rotation_deg == 180.0
    for i in range(8):
        expected = _brute_force_item(ds, i, lambda rng: float(rng.uniform(0.0, 2.0 * math.pi)))
        item = ds[i]
        assert np.array_equal(item["image"].numpy(), expected)
        assert all(torch.equal(item[k], explicit[i][k]) for k in item)


def test_rotation_bound_keeps_the_drawn_angles_within_it(monkeypatch) -> None:
    import mskseg.nn.multiplanar.dataset as mpd

    angles = []

    def recording(*args):
        angles.append(args[-1])
        return plane_coordinates(*args)

    monkeypatch.setattr(mpd, "plane_coordinates", recording)
    ds = MultiPlanarDataset([_case()], draw_views(3, seed=0), PlaneGrid(16, 2.0), samples_per_epoch=200,
                            max_rotation_deg=10)
    for i in range(len(ds)):
        ds[i]
    degrees = np.degrees(angles)
    assert len(degrees) == 200 and np.all(np.abs(degrees) <= 10.0)
    assert degrees.min() < -7 and degrees.max() > 7  # spread over the whole interval, both signs
    # the in-plane axes of every sampled plane are within 10 degrees of the view's own u, v
    coords = plane_coordinates(SHAPE, SPACING, IDENTITY, ds.bases[0], ds.grid, 0.0, math.radians(10))
    u_index = (coords[:, 1, 0] - coords[:, 0, 0]) * np.asarray(SPACING)  # mm per pixel along H
    cos = u_index @ ds.bases[0][0] / np.linalg.norm(u_index)
    assert np.isclose(np.degrees(np.arccos(cos)), 10.0)


@pytest.mark.parametrize("bad", [-1.0, 180.5, float("nan")])
def test_bad_rotation_bounds_are_rejected(bad) -> None:
    with pytest.raises(ValueError, match="max_rotation_deg"):
        _mp_dataset(max_rotation_deg=bad)


@pytest.mark.parametrize("bad", [-5, 200, True, "10", float("nan"), None])
def test_multiplanar_setting_max_rotation_deg_is_checked_and_threaded(bad) -> None:
    from mskseg.errors import ConfigError
    from mskseg.nn.fit import make_dataset, model_info
    from mskseg.nn.method import MethodSpec
    from mskseg.nn.settings import MultiplanarSettings

    assert MultiplanarSettings().max_rotation_deg == 180.0
    assert MultiplanarSettings.from_dict({"max_rotation_deg": 10}).to_dict()["max_rotation_deg"] == 10.0
    with pytest.raises(ValueError, match=r"multiplanar setting 'max_rotation_deg' must be a number in \[0, 180\]"):
        MultiplanarSettings(max_rotation_deg=bad)
    with pytest.raises(ConfigError, match=r"methods\.m\.multiplanar: multiplanar setting 'max_rotation_deg'"):
        MethodSpec.from_config("m", {"kind": "trained", "view": "multiplanar",
                                     "multiplanar": {"max_rotation_deg": bad}})
    spec = MethodSpec.from_config("m", {"kind": "trained", "view": "multiplanar",
                                        "multiplanar": {"dim": 32, "n_views": 2, "max_rotation_deg": 15,
                                                        "samples_per_epoch": 4}})
    cases = [_case()]
    info = model_info(spec, "mpr", [1, 2], cases, [])
    ds = make_dataset(spec, info, cases)
    assert isinstance(ds, MultiPlanarDataset) and ds.max_rotation_deg == 15.0


# --------------------------------------------------------------------------------- inference
def test_predict_recovers_ellipsoid_through_each_view() -> None:
    ell = _ellipsoid().astype(bool)
    image = ell.astype(np.float32)
    views = draw_views(3, seed=7)
    grid = inference_grid(float(np.linalg.norm(np.multiply(SHAPE, SPACING))), 1.0)
    probs, per_view = predict_multiplanar(_threshold_model(), image, SPACING, OBLIQUE, views, grid,
                                          batch_size=32, return_views=True)
    assert probs.shape == (2, *SHAPE) and probs.dtype == np.float32
    assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
    assert _dice(probs.argmax(0) == 1, ell) > 0.97
    assert len(per_view) == 3
    for view in per_view:
        assert np.allclose(view.sum(0), 1.0, atol=1e-5)
        assert _dice(view.argmax(0) == 1, ell) > 0.97
    assert np.allclose(probs, np.mean(per_view, axis=0), atol=1e-6)  # span >= diagonal: all covered


def test_predict_uncovered_voxels_are_background_and_partial_coverage_averages() -> None:
    image = _ellipsoid().astype(np.float32)
    views = draw_views(3, seed=2)
    grid = PlaneGrid(16, 1.0)  # 16 mm: the volume's corners lie outside every view
    probs, per_view = predict_multiplanar(_threshold_model(), image, SPACING, OBLIQUE, views, grid,
                                          return_views=True)
    assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
    idx = np.indices(SHAPE).reshape(3, -1).T
    rel = ((idx - (np.asarray(SHAPE) - 1) / 2) * SPACING) @ OBLIQUE.T  # world offsets from the centre
    k_half = 8  # offsets k mm, |k| <= 8, cover [-8.5, 8.5]; pixels cover [-8, 8]
    covered = []
    for normal in views:
        t = rel @ view_basis(normal).T
        covered.append((np.abs(t[:, 0]) <= 8 + 1e-3) & (np.abs(t[:, 1]) <= 8 + 1e-3) & (np.abs(t[:, 2]) <= k_half
                                                                                        + 0.5 + 1e-3))
    covered = np.array(covered).reshape(3, *SHAPE)
    count = covered.sum(0)
    assert (count == 0).any() and (count == 3).any()
    none = count == 0
    assert np.all(probs[0][none] == 1.0) and np.all(probs[1][none] == 0.0)
    some = count > 0
    expected = np.sum([v * c for v, c in zip(per_view, covered, strict=True)], axis=0)[:, some] / count[some]
    assert np.allclose(probs[:, some], expected, atol=1e-5)
    for v, c in zip(per_view, covered, strict=True):
        assert np.all(v[0][~c] == 1.0)


# ------------------------------------------------------------------------ inference_span: train
def test_prediction_grid_diagonal_is_todays_and_train_is_the_training_grid() -> None:
    extent = np.multiply(SHAPE, SPACING)  # 16, 30, 48 mm
    diagonal = float(np.linalg.norm(extent))
    grid, normal = prediction_grid(extent, 1.25)
    assert grid == inference_grid(diagonal, 1.25) and normal == grid.span_mm >= diagonal
    grid, normal = prediction_grid(extent, 1.25, inference_span="diagonal", train_dim=16, multiple=8)
    assert grid == inference_grid(diagonal, 1.25, 8)  # train_dim plays no part
    grid, normal = prediction_grid(extent, 1.25, inference_span="train", train_dim=16)
    assert grid == PlaneGrid(16, 1.25) and grid.span_mm == pytest.approx(20.0)
    assert normal == pytest.approx(diagonal)
    # along the normal: the training offsets, a fraction of the training span (never beyond the diagonal)
    for fraction, want in ((0.5, 10.0), (1.0, 20.0), (0.0, 1.25)):
        got = prediction_grid(extent, 1.25, inference_span="train", train_dim=16, max_offset_fraction=fraction)
        assert got == (PlaneGrid(16, 1.25), pytest.approx(want))
    assert prediction_grid(extent, 1.25, inference_span="train", train_dim=64,
                           max_offset_fraction=1.0)[1] == pytest.approx(diagonal)
    assert prediction_grid(extent, 1.25, train_dim=16, max_offset_fraction=0.5)[1] >= diagonal  # diagonal: unbounded
    with pytest.raises(ValueError, match=r"max_offset_fraction must lie in \[0, 1\]"):
        prediction_grid(extent, 1.25, inference_span="train", train_dim=16, max_offset_fraction=1.5)
    with pytest.raises(ValueError, match="needs the training slice size"):
        prediction_grid(extent, 1.25, inference_span="train")
    with pytest.raises(ValueError, match="inference_span must be one of"):
        prediction_grid(extent, 1.25, inference_span="sphere", train_dim=16)
    with pytest.raises(ValueError, match="three positive extents"):
        prediction_grid((16.0, 0.0, 48.0), 1.25)


def _covered_by(views, shape, spacing, direction, half_uv: float, half_n: float, tol: float = 1e-3) -> np.ndarray:
    """Brute force: per view, the voxels whose view-frame position lies within the grid's square and slab (plus
    ``tol`` mm; the code allows 1e-4 grid steps)."""
    idx = np.indices(shape).reshape(3, -1).T
    rel = ((idx - (np.asarray(shape) - 1) / 2) * spacing) @ np.asarray(direction).T  # world offsets (mm)
    out = []
    for normal in views:
        t = rel @ view_basis(normal).T
        out.append((np.abs(t[:, 0]) <= half_uv + tol) & (np.abs(t[:, 1]) <= half_uv + tol)
                   & (np.abs(t[:, 2]) <= half_n + tol))
    return np.array(out).reshape(len(views), *shape)


def test_train_span_prediction_covers_the_training_square_along_the_whole_normal() -> None:
    image = _ellipsoid().astype(np.float32)
    views = draw_views(3, seed=2)
    extent = np.multiply(SHAPE, SPACING)
    grid, normal = prediction_grid(extent, 1.0, inference_span="train", train_dim=16)
    probs, per_view = predict_multiplanar(_threshold_model(), image, SPACING, OBLIQUE, views, grid,
                                          normal_span_mm=normal, return_views=True)
    assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
    diagonal = float(np.linalg.norm(extent))
    k_half = math.ceil(diagonal / 2 - 0.5)  # offsets k mm, |k| <= K, cover [-K - 0.5, K + 0.5] >= D / 2
    covered = _covered_by(views, SHAPE, SPACING, OBLIQUE, 8.0, k_half + 0.5)
    assert np.array_equal(covered, _covered_by(views, SHAPE, SPACING, OBLIQUE, 8.0, np.inf))  # normal: all
    # the slab of the grid's own span (what the slices would cover without normal_span_mm) misses some
    assert (covered & ~_covered_by(views, SHAPE, SPACING, OBLIQUE, 8.0, 8.5)).any()
    count = covered.sum(0)
    assert (count == 0).any() and (count == 3).any()
    assert np.all(probs[0][count == 0] == 1.0)  # no view: background
    ell = _ellipsoid().astype(bool)
    for view, cov in zip(per_view, covered, strict=True):
        assert np.all(view[0][~cov] == 1.0)
        assert _dice((view.argmax(0) == 1) & cov, ell & cov) > 0.97  # what the view covers, it gets right
    some = count > 0
    expected = np.sum([v * c for v, c in zip(per_view, covered, strict=True)], axis=0)[:, some] / count[some]
    assert np.allclose(probs[:, some], expected, atol=1e-5)
    with pytest.raises(ValueError, match="normal_span_mm must be positive"):
        predict_multiplanar(_threshold_model(), image, SPACING, OBLIQUE, views, grid, normal_span_mm=0.0)


def test_train_span_prediction_votes_only_on_the_slab_of_the_training_offsets() -> None:
    """Each view covers the voxels a training slice could have reached: within the training square in-plane and
    within the training offsets (plus half a pixel) along its normal; brute force against the view frame."""
    image = _ellipsoid().astype(np.float32)
    views = draw_views(3, seed=2)
    extent = np.multiply(SHAPE, SPACING)
    fraction = 0.5
    grid, normal = prediction_grid(extent, 1.0, inference_span="train", train_dim=16, max_offset_fraction=fraction)
    probs, per_view = predict_multiplanar(_threshold_model(), image, SPACING, OBLIQUE, views, grid,
                                          normal_span_mm=normal, return_views=True)
    half_offsets = fraction * grid.span_mm / 2  # training offsets are uniform in [-4, 4] mm
    k_half = math.ceil(half_offsets - 0.5)  # slices at k mm, |k| <= K
    assert k_half + 0.5 >= half_offsets  # every training offset lies on the predicted slab
    covered = _covered_by(views, SHAPE, SPACING, OBLIQUE, 8.0, k_half + 0.5, tol=5e-5)
    assert (_covered_by(views, SHAPE, SPACING, OBLIQUE, 8.0, np.inf) & ~covered).any()  # the slab is thinner
    count = covered.sum(0)
    assert np.all(probs[0][count == 0] == 1.0)
    for view, cov in zip(per_view, covered, strict=True):
        assert np.all(view[0][~cov] == 1.0)
    some = count > 0
    expected = np.sum([v * c for v, c in zip(per_view, covered, strict=True)], axis=0)[:, some] / count[some]
    assert np.allclose(probs[:, some], expected, atol=1e-5)


@pytest.mark.parametrize("bad", ["sphere", "", None, 1])
def test_multiplanar_setting_inference_span_is_checked_recorded_and_used(bad, tmp_path) -> None:
    from mskseg.errors import ConfigError
    from mskseg.nn.data import Case
    from mskseg.nn.fit import make_dataset, model_info
    from mskseg.nn.method import MethodSpec
    from mskseg.nn.model_info import ModelInfo
    from mskseg.nn.predict import predict_view
    from mskseg.nn.settings import MultiplanarSettings

    assert MultiplanarSettings().inference_span == "diagonal"
    assert MultiplanarSettings.from_dict({"inference_span": "train"}).to_dict()["inference_span"] == "train"
    with pytest.raises(ValueError, match="multiplanar setting 'inference_span' must be 'diagonal' or 'train'"):
        MultiplanarSettings(inference_span=bad)
    with pytest.raises(ConfigError, match=r"methods\.m\.multiplanar: multiplanar setting 'inference_span'"):
        MethodSpec.from_config("m", {"kind": "trained", "view": "multiplanar", "multiplanar": {"inference_span": bad}})
    cases = [_case()]
    infos = {}
    for span in ("diagonal", "train"):
        spec = MethodSpec.from_config("m", {"kind": "trained", "view": "multiplanar",
                                            "multiplanar": {"dim": 16, "n_views": 2, "inference_span": span,
                                                            "samples_per_epoch": 4}})
        info = model_info(spec, "mpr", [1, 2], cases, [])
        assert info.inference_span == span and info.slice_size == [16, 16] and info.max_offset_fraction == 0.5
        info.write(tmp_path / f"{span}.json")
        assert ModelInfo.read(tmp_path / f"{span}.json") == info
        infos[span] = info
    # the training slices' grid is the one a 'train' prediction uses
    ds = make_dataset(spec, info, cases)
    assert ds.max_offset_fraction == 0.5
    extent = np.multiply(SHAPE, SPACING)
    assert prediction_grid(extent, info.pixel_mm, inference_span="train", train_dim=16)[0] == ds.grid
    # a model description written before the setting: today's behaviour
    old = {k: v for k, v in infos["diagonal"].__dict__.items()
           if k not in ("inference_span", "max_offset_fraction")} | {"slice_size": None}
    assert ModelInfo(**old).inference_span == "diagonal" and ModelInfo(**old).max_offset_fraction is None
    image = _ellipsoid().astype(np.float32)
    case = Case("c", image, None, None, SPACING, OBLIQUE)
    views = np.asarray(infos["train"].views)
    for span, info in infos.items():
        grid, normal = prediction_grid(extent, info.pixel_mm, inference_span=span, train_dim=16,
                                       max_offset_fraction=0.5)
        want = predict_multiplanar(_threshold_model(), image, SPACING, OBLIQUE, views, grid, normal_span_mm=normal)
        got = predict_view(_threshold_model(), info, case, device=torch.device("cpu"))
        assert np.allclose(got, want, atol=1e-6)
    assert np.allclose(predict_view(_threshold_model(), ModelInfo(**old), case, device=torch.device("cpu")),
                       predict_multiplanar(_threshold_model(), image, SPACING, OBLIQUE, views,
                                           inference_grid(float(np.linalg.norm(extent)), info.pixel_mm)),
                       atol=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.8", float("nan"), None])
def test_multiplanar_setting_max_offset_fraction_is_checked_and_threaded(bad) -> None:
    from mskseg.nn.fit import make_dataset, model_info
    from mskseg.nn.method import MethodSpec
    from mskseg.nn.settings import MultiplanarSettings

    assert MultiplanarSettings().max_offset_fraction == 0.5
    with pytest.raises(ValueError, match=r"multiplanar setting 'max_offset_fraction' must be a number in \[0, 1\]"):
        MultiplanarSettings(max_offset_fraction=bad)
    spec = MethodSpec.from_config("m", {"kind": "trained", "view": "multiplanar",
                                        "multiplanar": {"dim": 16, "n_views": 2, "max_offset_fraction": 0.8,
                                                        "samples_per_epoch": 4}})
    cases = [_case()]
    ds = make_dataset(spec, model_info(spec, "mpr", [1, 2], cases, []), cases)
    assert ds.max_offset_fraction == 0.8


def test_short_training_loop_lowers_the_loss() -> None:
    torch.manual_seed(0)
    ds = MultiPlanarDataset([_case(three_classes=False)], draw_views(3, seed=0), training_grid(48.0, 32),
                            samples_per_epoch=4, seed=1)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    model = build_model("unet2d", in_channels=1, n_classes=2, base=4, depth=2)
    loss_fn = get_loss("ce")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = loss_fn(model(batch["image"]), batch["target"], sample_weight=batch["sample_weight"])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

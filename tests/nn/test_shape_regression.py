"""Deep shape regression (knee paper 3.4): the PCA layer, the network, the crop's geometry, loss and training."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy.spatial.transform import Rotation  # noqa: E402
from torch import nn  # noqa: E402

from mskseg.nn.models.pca_layer import N_GLOBAL, PCALayer, crop_half_extent_mm, rotation_matrix  # noqa: E402
from mskseg.nn.models.shape_regression import SeparableConv3d, ShapeRegressionNet  # noqa: E402
from mskseg.nn.shape_crop import crop_geometry, crop_volume, mask_bbox, resample_crop  # noqa: E402
from mskseg.nn.shape_regression import (  # noqa: E402
    LandmarkDataset,
    build_shape_regression,
    fit_shape_regression,
    landmark_mse,
    landmark_sample,
    predict_landmarks,
    to_world,
)
from mskseg.nn.shape_settings import ShapeRegressionSettings  # noqa: E402
from mskseg.shape import SimilarityTransform, fit_shape_model  # noqa: E402
from mskseg.volume import Volume  # noqa: E402

torch.set_num_threads(1)

N_POINTS, N_SHAPES = 30, 8
SPACING = (1.5, 1.0, 2.0)
DIRECTION = Rotation.from_euler("xyz", [20, -10, 35], degrees=True).as_matrix()


def _shape_model(seed: int = 0, n_modes: int = 3):
    """A model of shapes built from three known modes around an ellipsoid-like cloud (mm)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(N_POINTS, 3)) * np.array([20.0, 14.0, 9.0])
    modes = rng.normal(size=(3, N_POINTS, 3))
    shapes = np.stack([base + np.tensordot(c, modes, axes=1) for c in rng.normal(size=(N_SHAPES, 3)) * 2])
    return fit_shape_model(shapes, [f"s{i}" for i in range(N_SHAPES)], n_modes=n_modes)


@pytest.fixture(scope="module")
def model():
    return _shape_model()


def _params(layer: PCALayer, b, t=(0, 0, 0), w=(0, 0, 0), s=(0, 0, 0)) -> torch.Tensor:
    values = np.concatenate([np.asarray(b, float), t, w, s])[None]
    return torch.tensor(values, dtype=layer.mean.dtype)


# --- the PCA layer --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_parameters_give_the_mean_exactly(model, dtype):
    layer = PCALayer.from_shape_model(model, dtype=dtype)
    out = layer(torch.zeros(3, layer.n_params, dtype=dtype))
    assert out.shape == (3, model.n_points, 3) and layer.n_params == model.n_modes + N_GLOBAL
    assert all(torch.equal(o, torch.tensor(model.mean, dtype=dtype)) for o in out)


@pytest.mark.parametrize("scaled", [True, False])
def test_layer_reproduces_the_shape_models_instances(model, scaled):
    layer = PCALayer.from_shape_model(model, scaled=scaled, dtype=torch.float64)
    b_mm = np.array([1.5, -2.0, 0.7]) * model.sd
    transform = SimilarityTransform(1.07, Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix(), [4.0, -3.0, 12.0])
    b = b_mm / model.sd if scaled else b_mm
    out = layer(_params(layer, b, transform.translation, Rotation.from_matrix(transform.rotation).as_rotvec(),
                        np.full(3, np.log(transform.scale))))[0].numpy()
    np.testing.assert_allclose(out, model.instance(b_mm, transform), atol=1e-10)
    # the model's reconstruction of a shape: its projection's coefficients and pose through the layer
    shape = model.instance(b_mm * 0.5, transform) + np.random.default_rng(3).normal(size=(N_POINTS, 3)) * 0.1
    coefficients, pose = model.project(shape)
    b = coefficients / model.sd if scaled else coefficients
    out = layer(_params(layer, b, pose.translation, Rotation.from_matrix(pose.rotation).as_rotvec(),
                        np.full(3, np.log(pose.scale))))[0].numpy()
    np.testing.assert_allclose(out, model.reconstruct(shape), atol=1e-10)


def test_first_modes_only(model):
    layer = PCALayer.from_shape_model(model, n_modes=1, dtype=torch.float64)
    assert layer.n_params == 1 + N_GLOBAL
    np.testing.assert_allclose(layer(_params(layer, [2.0]))[0].numpy(), model.instance([2.0 * model.sd[0]]),
                               atol=1e-10)
    with pytest.raises(ValueError, match="n_modes"):
        PCALayer.from_shape_model(model, n_modes=model.n_modes + 1)


def test_rotation_matrix_against_scipy():
    vectors = np.array([[0, 0, 0], [1e-9, 0, 0], [0.3, -0.2, 0.5], [2.0, 1.0, -1.5], [0, 0, np.pi]])
    np.testing.assert_allclose(rotation_matrix(torch.tensor(vectors)).numpy(),
                               Rotation.from_rotvec(vectors).as_matrix(), atol=1e-12)


def test_global_transform_against_brute_force(model):
    rng = np.random.default_rng(5)
    r0 = Rotation.from_rotvec([0.1, 0.7, -0.3]).as_matrix()
    base = np.array([0.02, 0.05, 0.03])
    layer = PCALayer.from_shape_model(model, rotation=r0, base_scale=base, dtype=torch.float64)
    params = rng.normal(size=(4, layer.n_params)) * 0.5
    out = layer(torch.tensor(params)).numpy()
    for row, points in zip(params, out, strict=True):
        b, t, w, s = row[:3], row[3:6], row[6:9], row[9:12]
        shape = model.mean + sum(b[k] * model.sd[k] * model.modes[k] for k in range(3))
        rot = Rotation.from_rotvec(w).as_matrix()
        expected = [base * np.exp(s) * (rot @ (r0 @ x)) + t for x in shape]
        np.testing.assert_allclose(points, expected, atol=1e-12)


def test_shape_buffers_or_fine_tuned_parameters(model):
    fixed = PCALayer.from_shape_model(model)
    tuned = PCALayer.from_shape_model(model, trainable_shape=True)
    assert list(fixed.parameters()) == [] and {n for n, _ in tuned.named_parameters()} == {"mean", "modes"}
    assert fixed.state_dict().keys() == tuned.state_dict().keys()
    tuned(torch.randn(2, tuned.n_params)).sum().backward()
    assert tuned.mean.grad is not None and tuned.modes.grad.abs().sum() > 0


def test_pca_layer_stays_fp32_under_autocast(model):
    layer = PCALayer.from_shape_model(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.zeros(1, layer.n_params, dtype=torch.bfloat16))
    assert out.dtype == torch.float32 and torch.equal(out[0], torch.tensor(model.mean, dtype=torch.float32))


# --- the network ----------------------------------------------------------------------------------


def _net(model, *, separable="spatial", in_channels=1, layers=1) -> ShapeRegressionNet:
    torch.manual_seed(0)
    return ShapeRegressionNet([PCALayer.from_shape_model(model, base_scale=0.05) for _ in range(layers)],
                              in_channels=in_channels, base=4, separable=separable)


@pytest.mark.parametrize("separable", ["spatial", "depthwise"])
def test_network_shapes_no_linear_and_gradients_reach_the_first_conv(model, separable):
    net = _net(model, separable=separable, in_channels=2)
    assert not any(isinstance(m, nn.Linear) for m in net.modules())
    assert sum(isinstance(m, SeparableConv3d) for m in net.modules()) == 5
    assert sum(isinstance(m, nn.InstanceNorm3d) for m in net.modules()) == 3
    x = torch.randn(2, 2, 16, 20, 18)
    out = net(x)
    assert out.shape == (2, model.n_points, 3)
    out.square().sum().backward()
    first = net.features[0][0][0].weight
    assert first.grad is not None and torch.isfinite(first.grad).all() and first.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="input channel"):
        net(torch.randn(1, 1, 16, 16, 16))


def test_untrained_network_puts_the_mean_at_the_centre(model):
    net = _net(model)
    nn.init.zeros_(net.head.weight)
    out = net(torch.randn(1, 1, 12, 12, 12))[0]
    assert torch.equal(out, 0.05 * torch.tensor(model.mean, dtype=torch.float32))


def test_multi_shape_variant(model):
    other = _shape_model(seed=1, n_modes=2)
    settings = ShapeRegressionSettings(cube_size=16, base_features=4)
    net = build_shape_regression([model, other], settings, half_extent_mm=[60.0, 50.0, 40.0])
    assert net.point_counts == (N_POINTS, N_POINTS) and net.head.out_channels == (3 + 9) + (2 + 9)
    out = net(torch.randn(2, 1, 16, 16, 16))
    femur, tibia = net.split_points(out)
    assert out.shape == (2, 2 * N_POINTS, 3) and femur.shape == tibia.shape == (2, N_POINTS, 3)
    np.testing.assert_allclose(net.pca_layers[1].base_scale.numpy(), [1 / 60, 1 / 50, 1 / 40], rtol=1e-6)


def test_build_is_seeded(model):
    settings = ShapeRegressionSettings(cube_size=16, base_features=4, seed=3)
    a, b = build_shape_regression(model, settings), build_shape_regression(model, settings)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    np.testing.assert_allclose(1 / a.pca_layers[0].base_scale.numpy(),
                               crop_half_extent_mm(model.mean, settings.margin_mm), rtol=1e-6)


# --- the crop -------------------------------------------------------------------------------------


def _trilinear(array: np.ndarray, index: np.ndarray) -> float:
    """Brute-force trilinear interpolation at a continuous index, zero outside the array."""
    base = np.floor(index).astype(int)
    total = 0.0
    for corner in np.ndindex(2, 2, 2):
        at = base + corner
        weight = np.prod(1 - np.abs(index - at))
        if np.all(at >= 0) and np.all(at < array.shape):
            total += weight * array[tuple(at)]
    return total


def test_whole_volume_crop_reproduces_the_volume_exactly():
    rng = np.random.default_rng(1)
    volume = Volume(rng.normal(size=(7, 9, 6)), SPACING, (12.0, -40.0, 7.5), DIRECTION)
    cube, geometry = crop_volume(volume, None, margin_mm=0.0, cube_size=volume.shape)
    index = np.indices(volume.shape).reshape(3, -1).T
    world = index @ geometry.index_to_world[:3, :3].T + geometry.index_to_world[:3, 3]
    np.testing.assert_allclose(world, volume.index_to_world(index), atol=1e-10)
    np.testing.assert_allclose(cube, volume.array, atol=1e-12)
    u = rng.uniform(-1, 1, size=(20, 3))
    np.testing.assert_allclose(geometry.to_normalised(geometry.to_world(u)), u, atol=1e-12)


@pytest.mark.parametrize("isotropic", [False, True])
def test_crop_against_brute_force(isotropic):
    rng = np.random.default_rng(2)
    volume = Volume(rng.normal(size=(14, 17, 11)), SPACING, (3.0, 5.0, -8.0), DIRECTION)
    lo, hi, margin, n = (3, 2, 4), (9, 12, 8), 2.5, 8
    cube, geometry = crop_volume(volume, (lo, hi), margin_mm=margin, cube_size=n, isotropic=isotropic)
    half = (np.subtract(hi, lo) + 1) * SPACING / 2 + margin
    half = np.full(3, half.max()) if isotropic else half
    centre = volume.index_to_world((np.add(lo, hi) / 2)[None])[0]
    np.testing.assert_allclose(geometry.half_extent_mm, half)
    expected = np.zeros((n, n, n))
    for i in np.ndindex(n, n, n):
        u = (2 * np.array(i) + 1) / n - 1
        world = centre + DIRECTION @ (half * u)
        np.testing.assert_allclose(geometry.index_to_world[:3] @ [*i, 1], world, atol=1e-10)
        np.testing.assert_allclose(geometry.to_normalised(world), u, atol=1e-12)
        expected[i] = _trilinear(volume.array, volume.world_to_index(world[None])[0])
    np.testing.assert_allclose(cube, expected, atol=1e-10)
    tensor = resample_crop(torch.tensor(volume.array[None]), geometry)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (1, n, n, n)
    np.testing.assert_allclose(tensor[0].numpy(), expected, atol=1e-10)
    labels = resample_crop((volume.array > 0).astype(np.uint8), geometry, interpolation="nearest")
    assert labels.dtype == np.float32 and set(np.unique(labels)) <= {0.0, 1.0}


def test_mask_bbox():
    mask = np.zeros((6, 7, 8), bool)
    mask[1, 2, 3] = mask[4, 5, 3] = True
    assert mask_bbox(mask) == ((1, 2, 3), (4, 5, 3))
    with pytest.raises(ValueError, match="no foreground"):
        mask_bbox(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="lo <= hi"):
        crop_geometry((5, 5, 5), (1, 1, 1), (0, 0, 0), np.eye(3), ((3, 0, 0), (2, 4, 4)), margin_mm=0, cube_size=4)


# --- loss and samples -----------------------------------------------------------------------------


def test_landmark_mse_by_hand():
    pred = torch.zeros(2, 2, 3)
    target = torch.tensor([[[1.0, 0, 0], [0, 2, 0]], [[0, 0, 3], [0, 0, 0]]])
    assert torch.isclose(landmark_mse(pred, target), torch.tensor((1 + 4 + 9) / 12))
    point_weight = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    assert torch.isclose(landmark_mse(pred, target, point_weight), torch.tensor((1 / 6 + 18 / 6) / 2))
    sample_weight = torch.tensor([3.0, 1.0])
    assert torch.isclose(landmark_mse(pred, target, None, sample_weight), torch.tensor((3 * 5 / 6 + 9 / 6) / 4))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        landmark_mse(pred, target[:, :1])


def test_sample_loss_is_world_mm2():
    rng = np.random.default_rng(4)
    volume = Volume(rng.normal(size=(14, 17, 11)), SPACING, (3.0, 5.0, -8.0), DIRECTION)
    cube, geometry = crop_volume(volume, ((2, 3, 1), (10, 12, 7)), margin_mm=4.0, cube_size=10)
    target = volume.index_to_world(rng.uniform(2, 9, size=(12, 3)))
    offset = rng.normal(size=(12, 3))
    sample = landmark_sample(cube, target, geometry)
    pred = torch.tensor(geometry.to_normalised(target + offset), dtype=torch.float32)
    loss = landmark_mse(pred[None], sample["target"][None], sample["weight"][None])
    assert float(loss) == pytest.approx(np.mean(offset**2), rel=1e-4)
    np.testing.assert_allclose(to_world(sample["target"], geometry).numpy(), target, atol=1e-4)
    weighted = landmark_sample(cube, target, geometry, point_weight=np.r_[np.zeros(6), np.ones(6)])
    loss = landmark_mse(pred[None], weighted["target"][None], weighted["weight"][None])
    assert float(loss) == pytest.approx(np.mean(offset[6:] ** 2), rel=1e-4)


# --- training -------------------------------------------------------------------------------------


def test_network_overfits_one_subject(model, tmp_path):
    """A ball-landmarked phantom: the shape model's instance, rotated and shifted, in a volume."""
    rng = np.random.default_rng(6)
    pose = SimilarityTransform(1.1, Rotation.from_rotvec([0.2, -0.1, 0.25]).as_matrix(), [60.0, 45.0, 40.0])
    target = model.instance(np.array([1.5, -1.0, 0.5]) * model.sd, pose)
    volume = Volume(np.zeros((80, 90, 60), np.float32), SPACING, (0.0, 0.0, 0.0))
    grid = np.indices(volume.shape, dtype=np.float32).transpose(1, 2, 3, 0) * np.float32(SPACING)
    for point in target:
        volume.array[((grid - point) ** 2).sum(-1) < 9.0] = 1.0
    volume.array[:] += rng.normal(scale=0.05, size=volume.shape)
    settings = ShapeRegressionSettings(cube_size=16, base_features=4, margin_mm=5.0, lr=1e-2, epochs=4,
                                       steps_per_epoch=30, batch_size=1, device="cpu")
    cube, geometry = crop_volume(volume, mask_bbox(volume.array > 0.5), margin_mm=settings.margin_mm,
                                 cube_size=settings.cube_size)
    sample = landmark_sample(cube, target, geometry)
    net = build_shape_regression(model, settings)
    with torch.no_grad():
        before = float(landmark_mse(net(sample["image"][None]), sample["target"][None], sample["weight"][None]))
    began = time.perf_counter()
    result = fit_shape_regression(net, LandmarkDataset([sample]), settings, tmp_path / "run")
    seconds = time.perf_counter() - began
    after = float(result.history["train_loss"].iloc[-1])
    assert before > 10.0 and after < before / 100, (before, result.history["train_loss"].tolist())
    assert seconds < 30
    (points,) = predict_landmarks(net, cube, geometry)
    distance = np.linalg.norm(points.numpy() - target, axis=1)
    assert distance.mean() < np.sqrt(3 * before) / 10


# --- settings -------------------------------------------------------------------------------------


def test_settings_round_trip_and_errors():
    settings = ShapeRegressionSettings.from_dict({"cube_size": 32, "n_modes": 10, "lr": "3e-4", "margin_mm": 8})
    assert ShapeRegressionSettings.from_dict(settings.to_dict()) == settings and settings.lr == 3e-4
    train = settings.train_settings(validation=True)
    assert train.monitor == "val_loss" and train.lr == 3e-4 and train.batch_size == settings.batch_size
    assert settings.train_settings().monitor == "train_loss"
    for bad, key in [({"cube_size": 8}, "cube_size"), ({"n_modes": 0}, "n_modes"), ({"lr": -1}, "lr"),
                     ({"separable": "full"}, "separable"), ({"margin_mm": -1}, "margin_mm"),
                     ({"fine_tune_modes": "yes"}, "fine_tune_modes"), ({"device": "tpu"}, "device"),
                     ({"cube": 3}, "cube")]:
        with pytest.raises(ValueError, match=key):
            ShapeRegressionSettings.from_dict(bad)

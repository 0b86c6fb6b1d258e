"""Augmentation: each transform alone, determinism, elastic sample weight, 3D, settings errors, training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mskseg.nn.augment import Augmenter, build_augmenter  # noqa: E402
from mskseg.nn.data import Case, SliceDataset  # noqa: E402
from mskseg.nn.losses import get_loss  # noqa: E402
from mskseg.nn.models import build_model  # noqa: E402
from mskseg.nn.settings import AugmentSettings  # noqa: E402

torch.set_num_threads(1)

#: each transform alone, always applied (elastic grid coarse enough for a 24x32 slice not to fold)
SINGLE = {
    "scale": {"scale": 0.2},
    "rotation": {"rotation_deg": 20.0},
    "shear": {"shear_deg": 20.0},
    "gamma": {"gamma": 0.5},
    "contrast": {"contrast": 0.5},
    "motion_blur": {"motion_blur": 1.0},
    "elastic": {"elastic": 1.0, "elastic_control_points": 5, "elastic_max_displacement": 5.0},
}
SPATIAL = {"scale", "rotation", "shear", "elastic"}


def disc_slice(channels: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 24x32 slice: two classes (a disc of 1 with a smaller disc of 2 inside) on background 0."""
    yy, xx = np.mgrid[:24, :32]
    r2 = (yy - 11.5) ** 2 + (xx - 15.5) ** 2
    target = np.where(r2 < 3.5**2, 2, np.where(r2 < 8**2, 1, 0)).astype(np.int64)
    image = np.repeat((40.0 * target + 10.0)[None], channels, axis=0).astype(np.float32)
    weight = (1.0 + (target > 0)).astype(np.float32)
    return image, target, weight


def ball_patch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    zz, yy, xx = np.mgrid[:16, :16, :16]
    target = (((zz - 7.5) ** 2 + (yy - 7.5) ** 2 + (xx - 7.5) ** 2) < 5**2).astype(np.int64)
    return (80.0 * target + 10.0 + zz)[None].astype(np.float32), target, np.ones(target.shape, np.float32)


def augmenter(dims: int = 2, **settings) -> Augmenter:
    return Augmenter(AugmentSettings(p=1.0, **settings), dims)


@pytest.mark.parametrize("name", SINGLE)
def test_each_transform_alone(name):
    image, target, weight = disc_slice(channels=3)
    out_image, out_target, out_weight, sample_weight = augmenter(**SINGLE[name])(
        image, target, weight, np.random.default_rng(3))
    assert out_image.shape == image.shape and out_image.dtype == np.float32
    assert out_target.shape == target.shape and out_target.dtype == np.int64
    assert out_weight.shape == weight.shape and out_weight.dtype == np.float32
    assert not np.array_equal(out_image, image)
    assert set(np.unique(out_target)) <= {0, 1, 2}
    assert out_weight.min() >= 0
    assert np.array_equal(out_image[0], out_image[1]) and np.array_equal(out_image[0], out_image[2])
    assert sample_weight == (1 / 3 if name == "elastic" else 1.0)
    if name in SPATIAL:  # image, target and weight moved together
        assert not np.array_equal(out_target, target)
        assert np.mean((out_image[0] > 30) == (out_target > 0)) > 0.95
        assert np.mean(out_target > 0) > 0.1
    else:
        assert np.array_equal(out_target, target) and np.array_equal(out_weight, weight)
    # the inputs are left alone
    assert np.array_equal(image, disc_slice(channels=3)[0])


def test_padding_values_of_affine():
    image, target, weight = disc_slice()
    out_image, out_target, out_weight, _ = augmenter(scale=0.5)(image, target, weight, np.random.default_rng(0))
    # a zoom-out (factor < 1) or an enlarging zoom: corners are padding or background either way
    assert out_target[0, 0] == 0 and out_weight[0, 0] == 1.0 and out_image[0, 0, 0] == image.min()
    out = augmenter(rotation_deg=45)(image + 5, target, weight * 0 + 2, np.random.default_rng(1))
    assert out[0].min() == pytest.approx(15.0)  # image minimum outside
    assert set(np.unique(out[2])) <= {1.0, 2.0}  # weight padding 1.0, interior 2.0


def test_nothing_enabled_gives_none():
    for settings in (None, AugmentSettings(), AugmentSettings(p=1.0), AugmentSettings(gamma=0.3, p=0.0),
                     AugmentSettings(elastic=0.5, elastic_max_displacement=0.0)):
        assert build_augmenter(settings, 2) is None
    built = build_augmenter(AugmentSettings(gamma=0.3), 3)
    assert isinstance(built, Augmenter) and built.dims == 3 and built.settings.gamma == 0.3
    assert build_augmenter(AugmentSettings(motion_blur=0.2), 2) is not None


ALL = {"scale": 0.1, "rotation_deg": 10.0, "shear_deg": 5.0, "gamma": 0.3, "contrast": 0.2, "motion_blur": 0.5,
       "elastic": 0.5, "elastic_control_points": 5, "elastic_max_displacement": 3.0}


def test_same_rng_same_output_in_any_torch_state():
    image, target, weight = disc_slice()
    aug = Augmenter(AugmentSettings(p=0.7, **ALL), 2)
    outputs = []
    for torch_seed in (1, 2):
        torch.manual_seed(torch_seed)
        before = torch.random.get_rng_state()
        outputs.append(aug(image, target, weight, np.random.default_rng([5, 1, 2])))
        assert torch.equal(torch.random.get_rng_state(), before)  # torch's global RNG untouched
    for a, b in zip(*outputs, strict=True):
        assert np.array_equal(a, b)
    others = [aug(image, target, weight, np.random.default_rng([5, 1, n]))[0] for n in range(3, 6)]
    assert not all(np.array_equal(o, outputs[0][0]) for o in others)


@pytest.mark.parametrize("deformed_weight", [1 / 3, 0.5])
def test_elastic_sample_weight(deformed_weight):
    image, target, weight = disc_slice()
    aug = Augmenter(AugmentSettings(elastic=0.5, elastic_control_points=5, elastic_max_displacement=4.0,
                                    deformed_weight=deformed_weight), 2)
    seen = set()
    for seed in range(10):
        out_image, _, _, sample_weight = aug(image, target, weight, np.random.default_rng(seed))
        deformed = not np.array_equal(out_image, image)
        assert sample_weight == (deformed_weight if deformed else 1.0)
        seen.add(deformed)
    assert seen == {True, False}


def test_3d():
    image, target, weight = ball_patch()
    for settings in [*({**s, "elastic_max_displacement": 3.0} for s in SINGLE.values()), ALL]:
        out_image, out_target, out_weight, sample_weight = augmenter(3, **settings)(
            image, target, weight, np.random.default_rng(7))
        assert out_image.shape == image.shape and out_target.shape == target.shape == out_weight.shape
        assert out_image.dtype == np.float32 and out_target.dtype == np.int64 and out_weight.dtype == np.float32
        assert set(np.unique(out_target)) <= {0, 1} and out_weight.min() >= 0
        assert not np.array_equal(out_image, image)
        assert np.mean((out_image[0] > 50) == (out_target > 0)) > 0.95 or settings.get("motion_blur")
        assert sample_weight in (1.0, 1 / 3)


def test_bad_inputs():
    image, target, weight = disc_slice()
    with pytest.raises(ValueError, match="dims"):
        Augmenter(AugmentSettings(), 4)
    with pytest.raises(ValueError, match=r"\(C, \*S\)"):
        augmenter(gamma=0.1)(image[0], target, weight, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(C, \*S\)"):
        augmenter(3, gamma=0.1)(image, target, weight, np.random.default_rng(0))


def test_from_dict_errors():
    assert AugmentSettings.from_dict({"p": 1, "scale": 0.1}) == AugmentSettings(p=1.0, scale=0.1)
    with pytest.raises(ValueError, match=r"'rotation'.*allowed: p, scale, rotation_deg"):
        AugmentSettings.from_dict({"rotation": 10})
    with pytest.raises(ValueError, match="gamma must not be negative"):
        AugmentSettings.from_dict({"gamma": -0.1})
    for key in ("p", "elastic", "motion_blur"):
        with pytest.raises(ValueError, match=f"{key} is a probability"):
            AugmentSettings.from_dict({key: 1.5})
    with pytest.raises(ValueError, match="elastic_control_points"):
        AugmentSettings.from_dict({"elastic_control_points": 4})
    with pytest.raises(ValueError, match="finite number"):
        AugmentSettings.from_dict({"scale": "big"})
    with pytest.raises(ValueError, match="scale must be below 1"):
        AugmentSettings(scale=1.0)


def slice_case() -> Case:
    image, target, _weight = disc_slice()
    volume = np.repeat(image[0][..., None], 4, axis=2)
    labels = np.repeat(target[..., None], 4, axis=2)
    return Case("disc", volume, labels, None, (1.0, 1.0, 1.0), np.eye(3))


def loss_drops(model: torch.nn.Module, batch: dict, steps: int = 20) -> tuple[float, float]:
    """Loss of ``model`` on ``batch`` before and after ``steps`` Adam steps (lr 1e-2, cross-entropy)."""
    loss_fn = get_loss("ce")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps + 1):
        loss = loss_fn(model(batch["image"]), batch["target"], sample_weight=batch["sample_weight"])
        losses.append(float(loss.detach()))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return losses[0], losses[-1]


@pytest.mark.parametrize("name", SINGLE)
def test_training_with_each_augmentation(name):
    dataset = SliceDataset([slice_case()], "axial", augment=augmenter(**SINGLE[name]), seed=1)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    assert batch["image"].shape == (4, 1, 32, 32)
    torch.manual_seed(0)
    model = build_model("unet2d", in_channels=1, n_classes=3, base=4, depth=2)
    start, end = loss_drops(model, batch)
    assert end < start

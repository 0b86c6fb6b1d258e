"""Cases and datasets: label encoding, planes, loading, 2D/2.5D slices, 3D patches, determinism, training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mskseg.io import write_volume  # noqa: E402
from mskseg.nn.augment import Augmenter  # noqa: E402
from mskseg.nn.data import (  # noqa: E402
    PLANES,
    Case,
    PatchDataset,
    SliceDataset,
    decode_labels,
    encode_labels,
    fit_to_size,
    in_plane_size,
    load_case,
    plane_axis,
)
from mskseg.nn.losses import get_loss  # noqa: E402
from mskseg.nn.models import build_model  # noqa: E402
from mskseg.nn.settings import AugmentSettings  # noqa: E402
from mskseg.volume import Volume  # noqa: E402

torch.set_num_threads(1)

#: a proper rotation that permutes and flips axes: LR along array axis 2, AP along 0, SI along 1
ROTATED = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
AUGMENT = Augmenter(AugmentSettings(p=0.5, rotation_deg=15.0, scale=0.1, gamma=0.3, elastic=0.3,
                                    elastic_control_points=5, elastic_max_displacement=2.0), 2)


IDENTITY = np.eye(3)


def make_case(shape=(20, 24, 6), direction=IDENTITY, name="a", weight=False, offset=0.0) -> Case:
    """Unique intensities per voxel (100 + offset + flat index); an ellipsoid of class 1 with a core of class 2."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt((grid**2).sum(0))
    target = np.where(r < 0.4, 2, np.where(r < 0.8, 1, 0)).astype(np.int64)
    image = (100.0 + offset + np.arange(np.prod(shape)).reshape(shape)).astype(np.float32)
    w = (1.0 + target).astype(np.float32) if weight else None
    return Case(name, image, target, w, (1.0, 1.0, 2.0), direction)


def test_encode_decode_round_trip():
    mask = np.array([[0, 3, 7], [300, 0, 3]], dtype=np.uint16)
    classes = encode_labels(mask, (3, 7, 300))
    assert classes.dtype == np.int64 and classes.tolist() == [[0, 1, 2], [3, 0, 1]]
    back = decode_labels(classes, (3, 7, 300))
    assert back.dtype == np.uint16 and np.array_equal(back, mask)
    small = np.array([0, 5, 2, 2], np.uint8)
    out = decode_labels(encode_labels(small, (5, 2)), (5, 2))
    assert out.dtype == np.uint8 and np.array_equal(out, small)
    assert encode_labels(small.astype(np.float32), (5, 2)).tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match=r"knee\.nii\.gz: label values 4, 9 not among the allowed values 0, 5, 2"):
        encode_labels(np.array([0, 4, 9, 5]), (5, 2), source="knee.nii.gz")
    with pytest.raises(ValueError, match=r"mask: .*non-integral"):
        encode_labels(np.array([0.0, 1.5]), (1,))
    with pytest.raises(ValueError, match="distinct positive"):
        encode_labels(small, (5, 5))
    with pytest.raises(ValueError, match=r"0\.\.2"):
        decode_labels(np.array([0, 3]), (5, 2))


def test_plane_axis():
    assert [plane_axis(np.eye(3), p) for p in PLANES] == [0, 1, 2]
    assert [plane_axis(ROTATED, p) for p in PLANES] == [2, 0, 1]
    flipped = -np.eye(3)[[1, 0, 2]]  # LR along axis 1, AP along axis 0, all reversed
    assert [plane_axis(flipped, p) for p in PLANES] == [1, 0, 2]
    volume = Volume(np.zeros((2, 2, 2)), (1, 1, 1), direction=ROTATED)
    assert plane_axis(volume, "sagittal") == 2 and make_case(direction=ROTATED).axis("axial") == 1
    with pytest.raises(ValueError, match="sagittal, coronal, axial"):
        plane_axis(np.eye(3), "transverse")


def test_load_case(tmp_path):
    shape, spacing, origin = (6, 5, 4), (0.5, 0.6, 2.0), (1.0, -2.0, 3.0)
    image = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    mask = np.zeros(shape, np.uint8)
    mask[2:4, 1:3, 1:3] = 4
    mask[0, 0, 0] = 8
    write_volume(Volume(image, spacing, origin, ROTATED), tmp_path / "img.nii.gz")
    write_volume(Volume(mask, spacing, origin, ROTATED), tmp_path / "mask.nii.gz")
    write_volume(Volume(np.full(shape, 2.0, np.float32), spacing, origin, ROTATED), tmp_path / "w.nii.gz")
    case, volume = load_case("s1", tmp_path / "img.nii.gz", mask=tmp_path / "mask.nii.gz",
                             weight=tmp_path / "w.nii.gz", label_values=(8, 4))
    assert case.name == "s1" and case.image.dtype == np.float32 and np.array_equal(case.image, image)
    assert case.target.dtype == np.int64 and np.array_equal(case.target, np.select([mask == 8, mask == 4], [1, 2]))
    assert case.weight.dtype == np.float32 and np.all(case.weight == 2.0)
    assert case.spacing == pytest.approx(spacing) and np.allclose(case.direction, ROTATED)
    assert volume.origin == pytest.approx(origin) and volume.shape == shape
    image_only, _ = load_case("s1", tmp_path / "img.nii.gz")
    assert image_only.target is None and image_only.weight is None

    write_volume(Volume(mask, (0.5, 0.6, 2.5), origin, ROTATED), tmp_path / "other.nii.gz")
    with pytest.raises(ValueError, match=r"other\.nii\.gz: its grid differs from the image .*img\.nii\.gz: spacing"):
        load_case("s1", tmp_path / "img.nii.gz", mask=tmp_path / "other.nii.gz", label_values=(8, 4))
    with pytest.raises(ValueError, match=r"other\.nii\.gz.*img\.nii\.gz"):
        load_case("s1", tmp_path / "img.nii.gz", weight=tmp_path / "other.nii.gz")
    with pytest.raises(ValueError, match=r"mask\.nii\.gz: label value 8 not among"):
        load_case("s1", tmp_path / "img.nii.gz", mask=tmp_path / "mask.nii.gz", label_values=(4,))


def test_slice_dataset_2d_shapes_padding_and_axis():
    a = make_case(weight=True)  # axial: axis 2 (6 slices of 20 x 24)
    b = make_case(shape=(10, 30, 14), direction=ROTATED, name="b", offset=1e4)  # axial: axis 1 (30 of 10 x 14)
    dataset = SliceDataset([a, b], "axial")
    assert len(dataset) == 6 + 30 and dataset.size == (32, 32) == in_plane_size([a, b], "axial")
    item = dataset[3]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert item["target"].shape == (32, 32) and item["target"].dtype == torch.int64
    assert item["weight"].dtype == torch.float32 and item["sample_weight"].shape == ()
    assert float(item["sample_weight"]) == 1.0
    # centre padding: before = (32 - 20) // 2 = 6 rows, (32 - 24) // 2 = 4 columns
    inner = (slice(6, 26), slice(4, 28))
    assert np.array_equal(item["image"][0][inner].numpy(), a.image[:, :, 3])
    assert np.array_equal(item["target"][inner].numpy(), a.target[:, :, 3])
    assert np.array_equal(item["weight"][inner].numpy(), a.weight[:, :, 3])
    outside = np.ones((32, 32), bool)
    outside[inner] = False
    assert np.all(item["image"][0].numpy()[outside] == a.image.min())
    assert np.all(item["target"].numpy()[outside] == 0) and np.all(item["weight"].numpy()[outside] == 1.0)
    # case b is sliced along array axis 1; no weight map -> ones
    item = dataset[6 + 17]
    assert np.array_equal(item["image"][0][11:21, 9:23].numpy(), b.image[:, 17, :])
    assert np.all(item["image"][0][:11].numpy() == b.image.min()) and np.all(item["weight"].numpy() == 1.0)
    assert dataset.locate(6 + 17) == (1, 17)
    # sagittal of b is axis 2; centre-crop to a smaller size
    cropped = SliceDataset([b], "sagittal", size=(8, 16))
    assert len(cropped) == 14 and cropped.size == (8, 16)
    assert np.array_equal(cropped[5]["image"][0].numpy(), b.image[1:9, 7:23, 5])
    assert np.array_equal(fit_to_size(b.image[:, :, 5], (8, 16), 0), b.image[1:9, 7:23, 5])


@pytest.mark.parametrize("n_slices", [3, 5])
def test_slice_dataset_25d_channels(n_slices):
    case = make_case(shape=(12, 16, 7), direction=ROTATED)  # coronal: axis 0 (12 slices of 16 x 7)
    dataset = SliceDataset([case], "coronal", n_slices=n_slices, size=(16, 16))
    assert len(dataset) == 12
    half = n_slices // 2
    for k in (0, 1, 5, 11):
        item = dataset[k]
        assert item["image"].shape == (n_slices, 16, 16)
        expected = np.take(case.image, np.clip(np.arange(k - half, k + half + 1), 0, 11), axis=0)
        assert np.array_equal(item["image"][:, :, 4:11].numpy(), expected)
        assert np.array_equal(item["target"][:, 4:11].numpy(), case.target[k])
    assert np.array_equal(dataset[0]["image"][0], dataset[0]["image"][half])  # clamped at the edge


def test_slice_dataset_errors():
    case = make_case()
    for n in (0, 2, 4):
        with pytest.raises(ValueError, match="odd"):
            SliceDataset([case], "axial", n_slices=n)
    no_target = Case("unlabelled", case.image, None, None, case.spacing, case.direction)
    with pytest.raises(ValueError, match="'unlabelled' has no target"):
        SliceDataset([case, no_target], "axial")
    with pytest.raises(ValueError, match="plane"):
        SliceDataset([case], "oblique")
    with pytest.raises(IndexError):
        SliceDataset([case], "axial")[6]


def test_slice_dataset_epochs_are_deterministic():
    dataset = SliceDataset([make_case()], "axial", n_slices=3, augment=AUGMENT, seed=4)
    first = [dataset[i] for i in range(3)]
    again = [dataset[i] for i in range(3)]
    dataset.set_epoch(1)
    other = [dataset[i] for i in range(3)]
    for x, y, _z in zip(first, again, other, strict=True):
        assert all(torch.equal(x[key], y[key]) for key in x)
    assert not all(torch.equal(x["image"], z["image"]) for x, z in zip(first, other, strict=True))
    dataset.set_epoch(0)
    assert torch.equal(dataset[2]["image"], first[2]["image"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2)
    batch = next(iter(loader))  # the same items in worker processes
    assert torch.equal(batch["image"], torch.stack([f["image"] for f in first]))


def small_ball_case(shape=(24, 20, 16), name="ball", offset=0.0) -> Case:
    target = np.zeros(shape, np.int64)
    target[3:6, 2:5, 2:4] = 1
    image = (offset + np.arange(np.prod(shape)).reshape(shape) % 97).astype(np.float32)
    return Case(name, image, target, np.full(shape, 3.0, np.float32), (1.0, 1.0, 1.0), np.eye(3))


def test_patch_dataset_centres_patches_on_the_given_points_within_the_jitter():
    case = small_ball_case(shape=(30, 28, 26))
    centres = np.array([[10, 10, 10], [20, 15, 12]])
    dataset = PatchDataset([case], (6, 6, 6), samples_per_case=40, seed=3, centres=[centres],
                           jitter_voxels=(2, 1, 0))
    seen = set()
    for i in range(len(dataset)):
        first = float(dataset[i]["image"][0, 0, 0, 0])  # the image value is the start voxel's flat index % 97
        start = np.argwhere(np.isclose(case.image, first))
        start = start[np.all(np.abs(start[:, None] + 3 - centres) <= np.array([2, 1, 0]), axis=2).any(axis=1)]
        assert len(start), f"patch {i} starts at no voxel within the jitter of a centre"
        seen.add(tuple(start[0]))
    assert len(seen) > 2
    with pytest.raises(ValueError, match="centre"):
        PatchDataset([case], (6, 6, 6), centres=[np.zeros((0, 3))])


def test_patch_dataset_shapes_foreground_and_determinism():
    cases = [small_ball_case(), small_ball_case(name="other", offset=1000.0)]
    dataset = PatchDataset(cases, (8, 8, 8), samples_per_case=6, foreground_fraction=1.0, seed=2)
    assert len(dataset) == 12
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            item = dataset[i]
            assert item["image"].shape == (1, 8, 8, 8) and item["target"].shape == (8, 8, 8)
            assert item["weight"].shape == (8, 8, 8) and item["image"].dtype == torch.float32
            assert int(item["target"].sum()) > 0
            assert (float(item["image"].min()) >= 1000) == (i >= 6)  # item i from case i // 6
    dataset.set_epoch(0)
    a, b = dataset[1], dataset[1]
    assert all(torch.equal(a[key], b[key]) for key in a)
    anywhere = PatchDataset(cases, (8, 8, 8), samples_per_case=20, foreground_fraction=0.0)
    assert min(int(anywhere[i]["target"].sum()) for i in range(20)) == 0
    assert len({float(anywhere[i]["image"][0, 0, 0, 0]) for i in range(20)}) > 5  # patches start anywhere
    epochs = []
    for epoch in (0, 1):
        anywhere.set_epoch(epoch)
        epochs.append(torch.stack([anywhere[i]["image"] for i in range(5)]))
    assert not torch.equal(*epochs)


def test_patch_dataset_pads_small_volumes():
    case = small_ball_case(shape=(6, 10, 4))
    dataset = PatchDataset([case], (8, 8, 8), samples_per_case=10, foreground_fraction=0.0)
    for i in range(10):
        item = dataset[i]
        image, target, weight = item["image"][0].numpy(), item["target"].numpy(), item["weight"].numpy()
        # axis 0: 6 -> 8 (1 before, 1 after); axis 1: 10 -> crop of 8; axis 2: 4 -> 8 (2 before, 2 after)
        inner = (slice(1, 7), slice(None), slice(2, 6))
        outside = np.ones(image.shape, bool)
        outside[inner] = False
        assert np.all(image[outside] == case.image.min()) and np.all(target[outside] == 0)
        assert np.all(weight[outside] == 1.0) and np.all(weight[inner] == 3.0)
        start = [s for s in range(3) if np.array_equal(image[inner], case.image[:, s:s + 8, :])]
        assert len(start) == 1


def test_patch_dataset_errors():
    case = small_ball_case()
    with pytest.raises(ValueError, match="foreground_fraction"):
        PatchDataset([case], (8, 8, 8), foreground_fraction=1.5)
    with pytest.raises(ValueError, match="patch_size"):
        PatchDataset([case], (8, 8))
    with pytest.raises(ValueError, match="no target"):
        PatchDataset([Case("x", case.image, None, None, (1, 1, 1), np.eye(3))], (8, 8, 8))


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


@pytest.mark.parametrize("kind", ["unet2d", "unet25d", "unet3d"])
def test_training_on_a_fixed_batch(kind):
    torch.manual_seed(0)
    if kind == "unet3d":
        augment = Augmenter(AugmentSettings(p=0.5, rotation_deg=10.0, gamma=0.2, elastic=0.5,
                                            elastic_control_points=5, elastic_max_displacement=2.0), 3)
        dataset = PatchDataset([make_case(shape=(16, 16, 12))], (16, 16, 16), samples_per_case=2, augment=augment)
        model = build_model("unet3d", in_channels=1, n_classes=3, base=4, depth=2)
    else:
        n_slices = 3 if kind == "unet25d" else 1
        dataset = SliceDataset([make_case(shape=(20, 24, 4))], "axial", n_slices=n_slices, augment=AUGMENT)
        options = {"n_slices": 3} if kind == "unet25d" else {}
        model = build_model(kind, in_channels=1, n_classes=3, base=4, depth=2, **options)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    batch["image"] = (batch["image"] - batch["image"].mean()) / batch["image"].std()
    start, end = loss_drops(model, batch)
    assert end < start

"""The case cache: cached cases give the samples of in-memory ones, the cache is reused and rebuilt, the
mappings are dropped, DataLoader workers read it, and a training through train_fold leaves no cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mskseg.io import write_volume  # noqa: E402
from mskseg.nn.augment import Augmenter  # noqa: E402
from mskseg.nn.cache import CachedArray, cache_cases, mapped  # noqa: E402
from mskseg.nn.data import PatchDataset, SliceDataset, foreground_indices, load_case  # noqa: E402
from mskseg.nn.multiplanar import MultiPlanarDataset, PlaneGrid, draw_views  # noqa: E402
from mskseg.nn.settings import AugmentSettings  # noqa: E402
from mskseg.volume import Volume  # noqa: E402

torch.set_num_threads(1)

#: LR along array axis 2, AP along 0, SI along 1: every plane's slices are stored transposed
ROTATED = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
LABELS = (1, 2)
AUGMENT_2D = Augmenter(AugmentSettings(p=0.5, rotation_deg=15.0, scale=0.1, gamma=0.3, contrast=0.2, elastic=0.3,
                                       elastic_control_points=5, elastic_max_displacement=2.0, motion_blur=0.3), 2)
AUGMENT_3D = Augmenter(AugmentSettings(p=0.5, rotation_deg=10.0, gamma=0.3, contrast=0.2), 3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three subjects on a rotated, anisotropic grid: image, mask (values 0, 1, 2) and weight map."""
    root = tmp_path_factory.mktemp("subjects")
    out = {"image": [], "mask": [], "weight": []}
    for i, shape in enumerate([(18, 22, 14), (20, 16, 12), (14, 18, 16)]):
        rng = np.random.default_rng(i)
        grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
        r = np.sqrt((grid ** 2).sum(0))
        mask = np.where(r < 0.4, 2, np.where(r < 0.8, 1, 0)).astype(np.uint8)
        image = (mask * 50.0 + rng.normal(0, 5, shape) - 20 * i).astype(np.float32)
        weight = (1.0 + 2.0 * (mask == 1)).astype(np.float32)
        for kind, array in (("image", image), ("mask", mask), ("weight", weight)):
            path = root / f"s{i}_{kind}.nii.gz"
            write_volume(Volume(array, (1.0, 1.2, 2.0), (3.0, -2.0, 1.0), ROTATED), path)
            out[kind].append(path)
    return out


def in_memory(files, weight=True):
    return [load_case(f"s{i}", files["image"][i], mask=files["mask"][i],
                      weight=files["weight"][i] if weight else None, label_values=LABELS)[0] for i in range(3)]


def cached(files, folder, weight=True, **options):
    return cache_cases(folder, [f"s{i}" for i in range(3)], files["image"], files["mask"],
                       files["weight"] if weight else None, label_values=LABELS, **options)


def assert_same_items(a, b, indices, epochs=(0, 1, 2)) -> None:
    for epoch in epochs:
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in indices:
            x, y = a[i], b[i]
            assert x.keys() == y.keys()
            for key in x:
                assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), (epoch, i, key)


@pytest.mark.parametrize("plane", ["sagittal", "coronal", "axial"])
@pytest.mark.parametrize("n_slices", [1, 3])
def test_cached_slices_equal_in_memory_slices(files, tmp_path, plane, n_slices):
    memory, disk = in_memory(files), cached(files, tmp_path / "cache", plane=plane)
    assert all(isinstance(c.image, CachedArray) and isinstance(c.target, CachedArray) for c in disk)
    axis = memory[0].axis(plane)
    assert disk[0].image.order[0] == axis  # the plane's slices are contiguous in the file
    a = SliceDataset(memory, plane, n_slices=n_slices, augment=AUGMENT_2D, seed=5)
    b = SliceDataset(disk, plane, n_slices=n_slices, augment=AUGMENT_2D, seed=5)
    assert len(a) == len(b) and a.size == b.size and a.minima == b.minima
    assert_same_items(a, b, range(len(a)))


def test_cached_patches_equal_in_memory_patches(files, tmp_path):
    memory, disk = in_memory(files), cached(files, tmp_path / "cache", foreground=True)
    assert all(c.foreground is not None for c in disk)
    a = PatchDataset(memory, (8, 8, 8), samples_per_case=5, foreground_fraction=0.6, augment=AUGMENT_3D, seed=1)
    b = PatchDataset(disk, (8, 8, 8), samples_per_case=5, foreground_fraction=0.6, augment=AUGMENT_3D, seed=1)
    assert_same_items(a, b, range(len(a)))
    without = PatchDataset(cached(files, tmp_path / "plain", weight=False), (16, 16, 16), samples_per_case=3,
                           foreground_fraction=0.6, seed=1)  # foreground computed from the cached target
    assert_same_items(PatchDataset(in_memory(files, weight=False), (16, 16, 16), samples_per_case=3,
                                   foreground_fraction=0.6, seed=1), without, range(len(without)))


def test_cached_multiplanar_samples_equal_in_memory_ones(files, tmp_path):
    grid = PlaneGrid(16, 1.5)
    views = draw_views(3, 0, min_angle_deg=30.0)
    a = MultiPlanarDataset(in_memory(files), views, grid, samples_per_epoch=6, augment=AUGMENT_2D, seed=2)
    b = MultiPlanarDataset(cached(files, tmp_path / "cache"), views, grid, samples_per_epoch=6, augment=AUGMENT_2D,
                           seed=2)
    assert_same_items(a, b, range(6))


def test_cached_arrays_read_as_the_arrays(files, tmp_path):
    memory, disk = in_memory(files)[1], cached(files, tmp_path / "cache", plane="axial")[1]
    loaded = disk.load()
    for what in ("image", "target", "weight"):
        original, handle = getattr(memory, what), getattr(disk, what)
        assert handle.shape == original.shape and handle.dtype == original.dtype and handle.ndim == 3
        back = getattr(loaded, what)
        assert isinstance(back, np.ndarray) and back.dtype == original.dtype and np.array_equal(back, original)
        assert back.strides == original.strides  # the original memory layout (sums add in the same order)
        assert np.array_equal(handle.take([3, 0, 3], axis=1), original.take([3, 0, 3], axis=1))
        assert np.array_equal(handle.take(2, axis=2), np.take(original, 2, axis=2))
        assert np.array_equal(handle[2:5, ::2, -3:], original[2:5, ::2, -3:])
        assert np.array_equal(np.asarray(handle), original)
    assert disk.image.min() == float(memory.image.min())
    assert memory.load() is memory
    with mapped(disk.image) as view:
        assert np.array_equal(view, memory.image)


def test_mappings_are_dropped_after_each_read(files, tmp_path):
    disk = cached(files, tmp_path / "cache", plane="sagittal")
    dataset = SliceDataset(disk, "sagittal", n_slices=3, augment=AUGMENT_2D)
    for i in range(len(dataset)):
        dataset[i]
    maps = Path("/proc/self/maps")
    with mapped(disk[0].image):
        assert str(tmp_path / "cache") in maps.read_text(encoding="utf-8")
    assert str(tmp_path / "cache") not in maps.read_text(encoding="utf-8")


def test_dataloader_workers_read_cached_cases(files, tmp_path):
    memory, disk = in_memory(files), cached(files, tmp_path / "cache", plane="coronal")
    a = SliceDataset(memory, "coronal", augment=AUGMENT_2D, seed=3)
    b = SliceDataset(disk, "coronal", augment=AUGMENT_2D, seed=3)
    first = next(iter(torch.utils.data.DataLoader(a, batch_size=6, num_workers=0)))
    workers = next(iter(torch.utils.data.DataLoader(b, batch_size=6, num_workers=2)))
    assert all(torch.equal(first[key], workers[key]) for key in first)


def test_cache_is_reused_and_rebuilt_where_incomplete(files, tmp_path, caplog):
    folder = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="mskseg.nn.cache"):
        cached(files, folder, plane="axial")
        assert "3 of 3 subjects written" in caplog.text
        caplog.clear()
        stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        cached(files, folder, plane="axial")
        assert "0 of 3 subjects written" in caplog.text
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # nothing written again

        # a subject killed while it was written: its array there, no record (the record comes last)
        record = next(p for p in sorted(folder.glob("s1-*.json")))
        record.unlink()
        (folder / ".tmp-p999999999-0000-s2_weight.npy").write_bytes(b"half")  # a killed writer's temporary
        image = next(folder.glob("s2-*_image.npy"))
        image.write_bytes(image.read_bytes()[:200])  # a damaged array
        caplog.clear()
        again = cached(files, folder, plane="axial")
        assert "2 of 3 subjects written" in caplog.text
        assert not list(folder.glob(".tmp-*"))
        assert np.array_equal(np.asarray(again[2].image), in_memory(files)[2].image)

        for changed in ({"plane": "sagittal"}, {"plane": "axial", "foreground": True}):  # other layout or arrays
            caplog.clear()
            cached(files, folder, **changed)
            assert "3 of 3 subjects written" in caplog.text
        caplog.clear()
        cached(files, folder, weight=False, plane="axial", foreground=True)
        assert "3 of 3 subjects written" in caplog.text


def test_foreground_indices_are_bounded_and_seeded():
    target = np.zeros((30, 30, 30), np.int64)
    target[5:25, 5:25, 5:25] = 1
    everything = np.flatnonzero(target)
    assert np.array_equal(foreground_indices(target), everything)
    sample = foreground_indices(target, limit=1000)
    assert len(sample) == 1000 and np.all(np.diff(sample) > 0) and np.isin(sample, everything).all()
    assert np.array_equal(sample, foreground_indices(target, limit=1000)) and sample.dtype == np.int32


def test_a_cached_case_pickles_as_paths(files, tmp_path):
    import pickle

    case = cached(files, tmp_path / "cache")[0]
    assert len(pickle.dumps(case)) < 4000  # paths and numbers, not arrays
    assert os.path.dirname(case.image.path) == str(tmp_path / "cache")

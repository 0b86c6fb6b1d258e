"""Tests of mskseg.reporting.overlays: planes in world terms, radiological layout, edge cases, the PNG."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mskseg.reporting.overlays import (
    DPI,
    FIGSIZE_IN,
    PLANES,
    build_overlay,
    grey_window,
    labelled_centroid,
    overlay_figure,
    plane_axes,
    plane_views,
)
from mskseg.volume import Volume
from tests.conftest import ROTATED, sphere_pair

NAMES = {"left ball": 1, "right ball": 2, "never": 7}


def _rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


#: array axis 0 along world y, 1 along -z, 2 along -x (ROTATED), then tilted by 20 degrees
OBLIQUE = _rotation((1.0, 1.0, 1.0), 20.0) @ ROTATED
DIRECTIONS = {
    "identity": np.eye(3),
    "nifti-ras": np.diag([-1.0, -1.0, 1.0]),  # a RAS-stored NIfTI read into LPS
    "permuted": ROTATED,
    "oblique": OBLIQUE,
    "mirrored": OBLIQUE @ np.diag([1.0, -1.0, 1.0]),
}


def test_plane_axes_of_permuted_and_oblique_volumes() -> None:
    assert plane_axes(np.eye(3)) == {"sagittal": 0, "coronal": 1, "axial": 2}
    assert plane_axes(ROTATED) == {"sagittal": 2, "coronal": 0, "axial": 1}
    assert plane_axes(OBLIQUE) == {"sagittal": 2, "coronal": 0, "axial": 1}
    # at 55 degrees about (1, 2, 3), world x and y are both closest to array axis 0: still a permutation,
    # the one of largest summed |cosine|
    steep = _rotation((1.0, 2.0, 3.0), 55.0)
    assert len(set(np.abs(steep).argmax(axis=1))) < 3
    chosen = plane_axes(steep)
    assert sorted(chosen.values()) == [0, 1, 2]
    best = max(sum(abs(steep[w, p[w]]) for w in range(3)) for p in itertools.permutations(range(3)))
    assert sum(abs(steep[w, chosen[plane]]) for w, plane in enumerate(PLANES)) == pytest.approx(best)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_panels_are_radiological_for_any_direction(name: str) -> None:
    """Two voxels apart along each screen axis land on the side the convention says, in every plane."""
    direction = DIRECTIONS[name]
    shape, spacing = (9, 10, 11), (0.9, 0.6, 1.3)
    grid = Volume(np.zeros(shape), spacing, (10.0, -20.0, 5.0), direction)
    views = plane_views(direction)
    # (world axis, sign) to the screen's right and top, per plane (LPS): the documented convention
    screen = {"sagittal": ((1, 1), (2, 1)), "coronal": ((0, 1), (2, 1)), "axial": ((0, 1), (1, -1))}
    centre = np.array([4, 5, 5])
    for plane in PLANES:
        view = views[plane]
        assert view.normal == plane_axes(direction)[plane]
        for column, axis in ((1, view.right), (0, view.up)):
            a, b = centre.copy(), centre.copy()
            b[axis] += 2
            array = np.zeros(shape)
            array[tuple(a)], array[tuple(b)] = 1.0, 2.0
            cut = view.cut(array, int(centre[view.normal]))
            pos_a = np.argwhere(cut == 1.0)[0]
            pos_b = np.argwhere(cut == 2.0)[0]
            world_axis, sign = screen[plane][1 - column]
            world_step = grid.index_to_world(b)[0, world_axis] - grid.index_to_world(a)[0, world_axis]
            assert np.sign(pos_b[column] - pos_a[column]) == np.sign(sign * world_step), (plane, axis)


def _pair(direction: np.ndarray = ROTATED) -> tuple[Volume, Volume]:
    image, labels = sphere_pair(direction=direction)
    return image, labels


def test_png_has_three_panels_and_the_expected_size(tmp_path: Path) -> None:
    image, labels = _pair()
    path = overlay_figure(image, labels, tmp_path / "figs" / "sub-01_overlay.png", label_names=NAMES,
                          title="sub-01")
    assert path == tmp_path / "figs" / "sub-01_overlay.png"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round(FIGSIZE_IN[1] * DPI), round(FIGSIZE_IN[0] * DPI))
    assert pixels[..., :3].std() > 0.05  # not blank
    fig = build_overlay(image, labels, label_names=NAMES)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 3 and [t.split()[0] for t in titles] == list(PLANES)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["left ball", "right ball", "never (absent)"]
    assert plt.get_fignums() == []


def test_default_slices_go_through_the_centroid_and_can_be_chosen() -> None:
    image, labels = _pair(np.eye(3))
    array = np.zeros(labels.shape, np.uint8)
    array[2:5, 3:6, 10:13] = 1  # centroid (3, 4, 11)
    labels = labels.with_array(array)
    assert np.allclose(labelled_centroid(array), [3, 4, 11])
    fig = build_overlay(image, labels, label_names=NAMES)
    assert [ax.get_title() for ax in fig.axes] == ["sagittal (array axis 0, slice 3)",
                                                    "coronal (array axis 1, slice 4)", "axial (array axis 2, slice 11)"]
    fig = build_overlay(image, labels, label_names=NAMES, slices={"axial": 0})
    assert fig.axes[2].get_title() == "axial (array axis 2, slice 0)"
    with pytest.raises(ValueError, match="outside"):
        build_overlay(image, labels, label_names=NAMES, slices={"axial": labels.shape[2]})
    with pytest.raises(ValueError, match="unknown plane"):
        build_overlay(image, labels, label_names=NAMES, slices={"transverse": 1})


def test_empty_segmentation_uses_the_volume_centre(tmp_path: Path) -> None:
    image, labels = _pair()
    empty = labels.with_array(np.zeros(labels.shape, np.uint8))
    assert labelled_centroid(empty.array) is None
    fig = build_overlay(image, empty, label_names=NAMES)
    views = plane_views(image.direction)
    for ax, plane in zip(fig.axes, PLANES, strict=True):
        centre = int(np.rint((image.shape[views[plane].normal] - 1) / 2))
        assert ax.get_title().endswith(f"slice {centre})")
        assert not ax.collections  # no outline
    assert all(t.get_text().endswith("(absent)") for t in fig.legends[0].get_texts())
    assert overlay_figure(image, empty, tmp_path / "empty.png", label_names=NAMES).exists()


def test_reference_outlines_are_dashed_and_the_legend_says_what_is_missing() -> None:
    image, labels = _pair()
    prediction = labels.with_array(np.where(labels.array == 2, 0, labels.array))  # right ball not predicted
    fig = build_overlay(image, prediction, label_names=NAMES, reference=labels)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["left ball", "right ball (not predicted)", "never (absent)", "prediction", "reference"]
    styles = {tuple(c.get_linestyle()[0][1] or ()) != () for ax in fig.axes for c in ax.collections}
    assert styles == {False, True}  # solid prediction and dashed reference outlines


def test_labels_on_another_grid_raise() -> None:
    image, labels = _pair()
    small = Volume(labels.array[:-2], labels.spacing, labels.origin, labels.direction)
    with pytest.raises(ValueError, match=r"size \(20, 24, 16\).*size \(18, 24, 16\)"):
        build_overlay(image, small, label_names=NAMES)
    shifted = Volume(labels.array, labels.spacing, (0.0, 0.0, 0.0), labels.direction)
    with pytest.raises(ValueError, match=r"reference are on another grid.*origin"):
        build_overlay(image, labels, label_names=NAMES, reference=shifted)


def test_grey_window() -> None:
    values = np.arange(1000, dtype=float).reshape(10, 10, 10)
    lo, hi = grey_window(values)
    assert lo == pytest.approx(9.99) and hi == pytest.approx(989.01)
    assert grey_window(np.full((3, 3, 3), 5.0)) == (5.0, 6.0)
    assert grey_window(np.full((3, 3, 3), np.nan)) == (0.0, 1.0)

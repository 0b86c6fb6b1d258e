"""Mirroring, working grids, Jacobians and transform/field files."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mskseg.registration.affine import compose_affine, from_matrix, transform_points
from mskseg.registration.fields import (
    jacobian_determinant,
    read_field,
    read_transform,
    write_field,
    write_transform,
)
from mskseg.registration.masks import (
    EmptyStructureError,
    crop_to_structure,
    mirror_points,
    mirror_volume,
    structure_mask,
    working_image,
)
from mskseg.volume import Volume
from tests.conftest import ROTATED, sphere_pair


def test_mirroring_reflects_world_points_and_keeps_voxels() -> None:
    _, mask = sphere_pair()
    mirrored = mirror_volume(mask)
    assert np.array_equal(mirrored.array, mask.array)
    idx = np.array([[1.0, 2.0, 3.0], [7.5, 0.0, 4.0]])
    assert np.allclose(mirrored.index_to_world(idx), mirror_points(mask.index_to_world(idx)))
    assert np.allclose(mirror_points(mirror_points(idx)), idx)
    assert np.linalg.det(mirrored.direction) == pytest.approx(-np.linalg.det(mask.direction))


def test_structure_mask_selects_one_label_and_names_an_empty_one() -> None:
    _, mask = sphere_pair()
    femur = structure_mask(mask, 2)
    assert set(np.unique(femur.array)) == {0, 1}
    assert femur.array.sum() == (mask.array == 2).sum()
    with pytest.raises(EmptyStructureError, match=r"'tibia' .*label 9"):
        structure_mask(mask, 9, name="tibia")


def test_working_image_holds_the_structure_volume() -> None:
    _, mask = sphere_pair(shape=(40, 48, 32))
    binary = structure_mask(mask, 1)
    image = working_image(binary, 0.5, 3.0)
    assert image.GetSpacing() == (0.5, 0.5, 0.5)
    assert np.allclose(np.array(image.GetDirection()).reshape(3, 3), mask.direction)
    volume_mm3 = sitk.GetArrayViewFromImage(image).sum() * 0.125
    true_mm3 = binary.array.sum() * binary.voxel_volume_mm3
    assert volume_mm3 == pytest.approx(true_mm3, rel=0.03)


def test_crop_to_structure_keeps_the_world_and_stops_at_the_border_without_pad() -> None:
    arr = np.zeros((10, 12, 8), np.uint8)
    arr[0:4, 5:7, 3:5] = 1  # touches the border at i = 0
    vol = Volume(arr, (1.0, 2.0, 0.5), (3.0, 4.0, 5.0), ROTATED)
    padded = crop_to_structure(vol, 2.0)
    clipped = crop_to_structure(vol, 2.0, pad=False)
    assert padded.shape[0] == 4 + 2 * 2 and clipped.shape[0] == 4 + 2
    for crop in (padded, clipped):
        assert crop.array.sum() == arr.sum()
        on = np.argwhere(crop.array)[:1].astype(float)
        assert vol.world_to_index(crop.index_to_world(on)).round().astype(int)[0].tolist() in np.argwhere(arr).tolist()


def test_jacobian_of_a_linear_field_on_a_rotated_anisotropic_grid() -> None:
    grid = sitk.Image([12, 14, 10], sitk.sitkFloat32)
    grid.SetSpacing([0.5, 1.0, 2.0])
    grid.SetDirection(ROTATED.ravel().tolist())
    grid.SetOrigin([3.0, -2.0, 7.0])
    m = np.array([[0.1, 0.05, 0.0], [0.0, -0.2, 0.03], [0.02, 0.0, 0.3]])
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in grid.GetSize()], indexing="ij"), -1).reshape(-1, 3)
    world = np.array([grid.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in idx])
    u = (world @ m.T).reshape(*grid.GetSize(), 3).transpose(2, 1, 0, 3)
    field = sitk.GetImageFromArray(u, isVector=True)
    field.CopyInformation(grid)
    jac = jacobian_determinant(field)
    assert np.allclose(jac, np.linalg.det(np.eye(3) + m), atol=1e-9)


def test_transform_and_field_files_round_trip(tmp_path) -> None:
    m = np.eye(4)
    m[:3, :3] = [[1.02, 0.05, 0], [-0.05, 0.98, 0.01], [0, 0.02, 1.1]]
    m[:3, 3] = [1.0, -3.0, 2.5]
    tx = from_matrix(m)
    write_transform(tx, tmp_path / "a.tfm")
    back = read_transform(tmp_path / "a.tfm")
    pts = np.array([[0.0, 0.0, 0.0], [10.0, -5.0, 3.0]])
    assert np.allclose(transform_points(back, pts), transform_points(tx, pts))
    assert np.allclose(transform_points(compose_affine(tx, back.GetInverse()), pts), pts)
    field = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(4, 5, 6, 3)), isVector=True)
    field.SetSpacing([1.0, 2.0, 3.0])
    write_field(field, tmp_path / "f.nii.gz")
    again = read_field(tmp_path / "f.nii.gz")
    assert again.GetSpacing() == field.GetSpacing()
    assert np.allclose(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(field), atol=1e-6)
    (tmp_path / "bad.tfm").write_text("not a transform", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tfm"):
        read_transform(tmp_path / "bad.tfm")
    sitk.WriteImage(sitk.Image([3, 3, 3], sitk.sitkFloat32), str(tmp_path / "scalar.nii.gz"))
    with pytest.raises(ValueError, match="3 components"):
        read_field(tmp_path / "scalar.nii.gz")

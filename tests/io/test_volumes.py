from pathlib import Path

import numpy as np
import pytest

from mskseg.io import VolumeReadError, read_volume, write_volume
from mskseg.io.volumes import volume_format, write_dicom_series
from mskseg.volume import Volume
from tests.conftest import ROTATED, sphere_pair

FILE_FORMATS = ["a.nii", "a.nii.gz", "a.mhd", "a.mha", "a.nrrd"]


@pytest.mark.parametrize("name", FILE_FORMATS)
def test_each_file_format_round_trips_values_and_geometry(tmp_path: Path, name: str) -> None:
    image, mask = sphere_pair()
    for vol, stem in ((image, "img"), (mask, "msk")):
        path = tmp_path / f"{stem}_{name}"
        write_volume(vol, path)
        back = read_volume(path)
        assert back.geometry_mismatches(vol) == []
        assert back.array.dtype == vol.array.dtype
        np.testing.assert_array_equal(back.array, vol.array)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_dicom_series_round_trips_integer_volume(tmp_path: Path) -> None:
    _, mask = sphere_pair()
    vol = Volume((mask.array.astype(np.int16) * 300 - 50), mask.spacing, mask.origin, ROTATED)
    write_dicom_series(vol, tmp_path / "series")
    back = read_volume(tmp_path / "series")
    assert volume_format(tmp_path / "series") == "dicom"
    assert back.geometry_mismatches(vol, origin_tol=1e-3) == []
    np.testing.assert_array_equal(back.array, vol.array)


def test_world_coordinates_follow_direction_and_spacing() -> None:
    vol = Volume(np.zeros((2, 3, 4)), (0.5, 2.0, 3.0), (10.0, 20.0, 30.0), ROTATED)
    world = vol.index_to_world(np.array([[1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(world, [[10.0 - 3.0, 20.0 + 0.5, 30.0 - 2.0]])
    np.testing.assert_allclose(vol.world_to_index(world), [[1.0, 1.0, 1.0]])


def test_missing_file_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(VolumeReadError, match=r"nothere.nii.gz: file does not exist"):
        read_volume(tmp_path / "nothere.nii.gz")


def test_corrupt_file_error_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"\x1f\x8b this is not a gzip stream")
    with pytest.raises(VolumeReadError, match=r"corrupt.nii.gz: cannot be read as nifti"):
        read_volume(bad)


def test_truncated_metaimage_is_reported(tmp_path: Path) -> None:
    image, _ = sphere_pair()
    write_volume(image, tmp_path / "t.mhd", compress=False)
    raw = tmp_path / "t.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(VolumeReadError, match=r"t.mhd"):
        read_volume(tmp_path / "t.mhd")


def test_unknown_ending_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(VolumeReadError, match="unknown volume format"):
        read_volume(tmp_path / "x.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeReadError, match="no DICOM series"):
        read_volume(tmp_path / "empty")


def test_two_dimensional_file_is_refused(tmp_path: Path) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.Image(4, 5, sitk.sitkUInt8), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(VolumeReadError, match="2D"):
        read_volume(tmp_path / "flat.nii.gz")


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import SimpleITK as sitk

    image, _ = sphere_pair()

    def broken(img, path, useCompression=True):
        Path(path).write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_volume(image, tmp_path / "out.nii.gz")
    assert list(tmp_path.iterdir()) == []

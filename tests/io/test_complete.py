"""Every reader proves a volume complete: truncated, damaged and short files fail naming the file and why."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mskseg.io.complete import IncompleteVolumeError, check_complete, nifti_expected_bytes
from mskseg.io.volumes import VolumeReadError, read_volume, write_volume
from mskseg.volume import Volume

#: random values: compression cannot shrink them, so half the file is half the data
ARRAY = np.random.default_rng(0).normal(size=(12, 14, 10)).astype(np.float32)
FORMATS = [("a.nii.gz", True), ("a.nii", False), ("a.mha", False), ("c.mha", True), ("a.mhd", False),
           ("c.mhd", True), ("a.nrrd", False), ("c.nrrd", True)]


def _write(path: Path, compress: bool) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(ARRAY), str(path), useCompression=compress)
    if path.suffix == ".mhd":
        return path.with_suffix(".zraw" if compress else ".raw")
    return path


@pytest.mark.parametrize("name, compress", FORMATS, ids=[n if not c else f"{n}-compressed" for n, c in FORMATS])
def test_a_file_cut_in_half_is_refused_with_the_reason(tmp_path: Path, name: str, compress: bool) -> None:
    data = _write(tmp_path / name, compress)
    assert read_volume(tmp_path / name).shape == (10, 14, 12)  # whole: reads
    content = data.read_bytes()
    data.write_bytes(content[: len(content) // 2])
    with pytest.raises(VolumeReadError) as info:
        read_volume(tmp_path / name)
    message = str(info.value)
    assert message.startswith(str(tmp_path / name))
    assert "No such file or directory" not in message  # ITK's errno leftover is not the reason
    assert any(word in message for word in ("truncated", "expected", "fread got only")), message


def test_nifti_whole_files_pass_and_the_size_is_the_headers(tmp_path: Path) -> None:
    volume = Volume(ARRAY, (1.0, 2.0, 3.0))
    write_volume(volume, tmp_path / "v.nii", compress=False)
    header = (tmp_path / "v.nii").read_bytes()[:540]
    assert nifti_expected_bytes(header) == (tmp_path / "v.nii").stat().st_size == 352 + ARRAY.nbytes
    check_complete(tmp_path / "v.nii", "nifti")
    with pytest.raises(IncompleteVolumeError, match="not a NIfTI header"):
        nifti_expected_bytes(b"\0" * 348)
    with pytest.raises(IncompleteVolumeError, match="ends inside the NIfTI header"):
        nifti_expected_bytes(header[:100])
    big_endian = struct.pack(">i", 348) + header[4:40] + struct.pack(">8h", 3, 2, 2, 2, 1, 1, 1, 1) + header[56:70] \
        + struct.pack(">hh", 16, 32) + header[74:108] + struct.pack(">f", 352.0) + header[112:]
    assert nifti_expected_bytes(big_endian) == 352 + 8 * 4


def test_gzip_members_damage_and_a_short_stream(tmp_path: Path) -> None:
    write_volume(Volume(ARRAY, (1.0, 1.0, 1.0)), tmp_path / "v.nii", compress=False)
    raw = (tmp_path / "v.nii").read_bytes()
    (tmp_path / "two.nii.gz").write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    check_complete(tmp_path / "two.nii.gz", "nifti")  # two members, as `cat a.gz b.gz` makes
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(raw[:-40]))  # a whole stream, too little data
    with pytest.raises(IncompleteVolumeError, match="header declares"):
        check_complete(tmp_path / "short.nii.gz", "nifti")
    damaged = bytearray(gzip.compress(raw))
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "damaged.nii.gz").write_bytes(bytes(damaged))
    with pytest.raises(VolumeReadError, match=r"damaged|truncated"):
        read_volume(tmp_path / "damaged.nii.gz")


def test_a_metaimage_without_its_data_file(tmp_path: Path) -> None:
    data = _write(tmp_path / "a.mhd", False)
    data.unlink()
    with pytest.raises(VolumeReadError, match=r"a\.mhd: .*data file a\.raw does not exist"):
        read_volume(tmp_path / "a.mhd")


def test_a_dicom_series_with_a_damaged_or_missing_slice_is_refused(tmp_path: Path) -> None:
    import shutil

    from mskseg.io.volumes import write_dicom_series

    array = np.random.default_rng(1).integers(1, 1000, size=(10, 12, 8)).astype(np.int16)
    write_dicom_series(Volume(array, (1.0, 1.0, 2.0)), tmp_path / "a")
    assert read_volume(tmp_path / "a").shape == (10, 12, 8)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    damaged = sorted((tmp_path / "a").iterdir())[3]
    damaged.write_bytes(damaged.read_bytes()[:-200])  # GDCM would leave this slice out without a word
    with pytest.raises(VolumeReadError, match=rf"not readable slices of its series .*{damaged.name}"):
        read_volume(tmp_path / "a")
    sorted((tmp_path / "b").iterdir())[3].unlink()
    with pytest.raises(VolumeReadError, match=r"not evenly spaced: 4 mm between slices 3 and 4, 2 mm elsewhere"):
        read_volume(tmp_path / "b")

"""One reader and one writer for every volume format the workflow accepts.

Supported: NIfTI (``.nii``, ``.nii.gz``), MetaImage (``.mhd`` + ``.raw``/``.zraw``, ``.mha``),
NRRD (``.nrrd``, ``.nhdr``) and DICOM series (a folder of one series' slices).
All go through SimpleITK, so the geometry (spacing, origin, direction) is read the same
way for every format. Arrays come back in index order ``(i, j, k)`` (see :mod:`mskseg.volume`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mskseg.io.atomic import atomic_path, split_suffix
from mskseg.io.complete import IncompleteVolumeError, check_complete
from mskseg.volume import Volume

FILE_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha", ".nrrd", ".nhdr")


class VolumeReadError(RuntimeError):
    """A volume that cannot be read; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def volume_format(path: str | os.PathLike[str]) -> str:
    """Name of the format of ``path``: nifti, metaimage, nrrd or dicom (a folder)."""
    p = Path(path)
    if p.is_dir():
        return "dicom"
    suffix = split_suffix(p)[1].lower()
    formats = {".nii": "nifti", ".nii.gz": "nifti", ".mhd": "metaimage", ".mha": "metaimage",
               ".nrrd": "nrrd", ".nhdr": "nrrd"}
    if suffix not in formats:
        raise VolumeReadError(p, f"unknown volume format {suffix!r}; expected one of "
                              f"{', '.join(FILE_SUFFIXES)} or a DICOM series folder")
    return formats[suffix]


def from_sitk(image: sitk.Image) -> Volume:
    """A :class:`Volume` from a 3D SimpleITK image (array transposed to index order)."""
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"expected one value per voxel, got {image.GetNumberOfComponentsPerPixel()}")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return Volume(array, image.GetSpacing(), image.GetOrigin(), direction)


def to_sitk(volume: Volume) -> sitk.Image:
    """A SimpleITK image from a :class:`Volume`."""
    array = volume.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(float(v) for v in volume.direction.ravel()))
    return image


def read_volume(path: str | os.PathLike[str]) -> Volume:
    """Read a volume file or a DICOM series folder.

    Raises :class:`VolumeReadError` naming the file when it is missing, truncated,
    not 3D, has several components per voxel, or is a folder without one DICOM series.
    """
    p = Path(path)
    if not p.exists():
        raise VolumeReadError(p, "file does not exist")
    fmt = volume_format(p)
    try:
        check_complete(p, fmt)
    except IncompleteVolumeError as err:
        raise VolumeReadError(p, f"cannot be read as {fmt}: {err}") from None
    except OSError as err:
        raise VolumeReadError(p, f"cannot be read: {err.strerror or err}") from None
    try:
        image = _read_dicom_series(p) if fmt == "dicom" else sitk.ReadImage(str(p))
    except VolumeReadError:
        raise
    except RuntimeError as err:  # SimpleITK reports every IO failure as RuntimeError
        raise VolumeReadError(p, f"cannot be read as {fmt}: {itk_reason(err)}") from err
    if image.GetDimension() != 3:
        raise VolumeReadError(p, f"is {image.GetDimension()}D, a 3D volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeReadError(p, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel")
    return from_sitk(image)


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise VolumeReadError(folder, "folder holds no DICOM series")
    if len(series) > 1:
        raise VolumeReadError(folder, f"folder holds {len(series)} DICOM series ({', '.join(series)}); "
                              "give one series per folder")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    _check_series_complete(folder, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


def _check_series_complete(folder: Path, files: tuple[str, ...]) -> None:
    """Every file of the folder is a slice of the series, and the slices are evenly spaced.

    GDCM leaves a damaged or truncated slice out of the series without an error, and ITK then stacks
    the others with a warning only: the volume would silently miss a slice.
    """
    members = {Path(f).name for f in files}
    others = sorted(f.name for f in folder.iterdir()
                    if f.is_file() and not f.name.startswith(".") and f.name != "DICOMDIR" and f.name not in members)
    if others:
        raise VolumeReadError(folder, f"{len(others)} file(s) are not readable slices of its series (damaged, "
                              f"truncated or of another kind): {', '.join(others[:5])}"
                              + (" ..." if len(others) > 5 else ""))
    if len(files) < 3:
        return
    positions = []
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        reader.ReadImageInformation()
        normal = np.cross(*np.asarray(reader.GetDirection(), float).reshape(3, 3).T[:2])
        positions.append(float(np.dot(reader.GetOrigin(), normal)))
    gaps = np.abs(np.diff(positions))
    typical = float(np.median(gaps))
    if typical > 0 and np.max(np.abs(gaps - typical)) > 0.01 * typical:
        worst = int(np.argmax(np.abs(gaps - typical)))
        raise VolumeReadError(folder, f"its slices are not evenly spaced: {gaps[worst]:.4g} mm between slices "
                              f"{worst + 1} and {worst + 2}, {typical:.4g} mm elsewhere (a slice missing?)")


def itk_reason(err: Exception) -> str:
    """The meaningful line of a SimpleITK / ITK error.

    ITK's message starts with the source location; then comes ``ITK ERROR: <Class>(0x...): <what>``,
    possibly followed by ``Reason: <strerror>``, which is whatever ``errno`` last held (often "No such file
    or directory" for a file that exists) and is left out. NRRD's reader reports ``[nrrd] ...`` lines, the
    last the most specific; SimpleITK's own errors are ``sitk::ERROR: ...``.
    """
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    nrrd = [ln for ln in lines if ln.startswith("[nrrd]")]
    if nrrd:
        return nrrd[-1]
    for marker in ("ITK ERROR:", "sitk::ERROR:"):
        found = [ln for ln in lines if ln.startswith(marker)]
        if found:
            return re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", found[-1][len(marker):].strip())
    return lines[-1] if lines else type(err).__name__


def write_volume(volume: Volume, path: str | os.PathLike[str], compress: bool = True) -> None:
    """Write a volume atomically; the format follows the file ending (a folder: DICOM series).

    MetaImage ``.mhd`` writes its ``.raw``/``.zraw`` data file beside the header; both appear
    together. DICOM is written by :func:`write_dicom_series`.
    """
    p = Path(path)
    fmt = volume_format(p) if not p.is_dir() and split_suffix(p)[1] else "dicom"
    if fmt == "dicom":
        write_dicom_series(volume, p)
        return
    image = to_sitk(volume)
    if fmt == "metaimage" and p.suffix.lower() == ".mhd":
        _write_mhd(image, p, compress)
        return
    with atomic_path(p) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)


def _write_mhd(image: sitk.Image, path: Path, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-") as tmpdir:
        tmp_header = Path(tmpdir) / path.name
        sitk.WriteImage(image, str(tmp_header), useCompression=compress)
        for f in Path(tmpdir).iterdir():  # data file first, header last
            if f.name != path.name:
                os.replace(f, path.parent / f.name)
        os.replace(tmp_header, path)


def write_dicom_series(volume: Volume, folder: str | os.PathLike[str], modality: str = "OT") -> None:
    """Write a volume as a DICOM series (one file per slice along index axis k).

    Pixel values are stored as 16-bit integers with the geometry in each slice's
    Image Position / Orientation (Patient) and Pixel Spacing / Slice Thickness. The
    folder appears complete or not at all.
    """
    dest = Path(folder)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest}: folder is not empty")
    image = sitk.Cast(to_sitk(volume), sitk.sitkInt16)
    direction = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125." + str(abs(hash((str(dest), volume.shape))) % 10**12)
    common = [
        ("0008|0060", modality),
        ("0020|000e", series_uid),
        ("0020|000d", series_uid + ".1"),
        ("0020|0037", "\\".join(f"{v:.10f}" for v in (*direction[0:7:3], *direction[1:8:3]))),
        ("0018|0050", f"{volume.spacing[2]:.6f}"),
        ("0028|0030", f"{volume.spacing[1]:.6f}\\{volume.spacing[0]:.6f}"),
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
    try:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for k in range(image.GetDepth()):
            sl = image[:, :, k]
            for tag, value in common:
                sl.SetMetaData(tag, value)
            pos = image.TransformIndexToPhysicalPoint((0, 0, k))
            sl.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in pos))
            sl.SetMetaData("0020|0013", str(k + 1))
            sl.SetMetaData("0008|0018", f"{series_uid}.{k + 1}")
            writer.SetFileName(str(tmp / f"slice{k:04d}.dcm"))
            writer.Execute(sl)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)

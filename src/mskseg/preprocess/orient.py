"""Reorientation of a volume's index axes to a named anatomical orientation.

Orientation codes follow SimpleITK's :class:`~SimpleITK.DICOMOrientImageFilter` (and
nibabel / 3D Slicer): letter ``a`` names the anatomical direction that index axis ``a``
*points towards* as its index increases, in the LPS world frame of ITK. ``"LPS"`` is the
identity direction; ``"RAS"`` is ``diag(-1, -1, 1)``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mskseg.io.volumes import from_sitk, to_sitk
from mskseg.volume import Volume

_AXIS_PAIRS = ("LR", "PA", "SI")


def validate_orientation_code(code: str) -> str:
    """Check an orientation code and return it in upper case.

    Parameters
    ----------
    code
        Three letters, one from each of the pairs ``L/R``, ``P/A`` and ``S/I``, in any
        order (e.g. ``"LPS"``, ``"RAS"``, ``"PIR"``). Case-insensitive.

    Raises
    ------
    ValueError
        Naming the code and what is allowed when it is not such a code.
    """
    allowed = ("three letters, one from each of L/R, P/A and S/I in any order "
               "(e.g. 'LPS', 'RAS', 'PIR')")
    if not isinstance(code, str):
        raise ValueError(f"invalid orientation code {code!r}: expected {allowed}")
    upper = code.upper()
    ok = len(upper) == 3 and all(sum(ch in pair for ch in upper) == 1 for pair in _AXIS_PAIRS)
    if not ok:
        raise ValueError(f"invalid orientation code {code!r}: expected {allowed}")
    return upper


def orientation_code(volume: Volume) -> str:
    """The three-letter orientation code of ``volume``'s direction matrix.

    For an oblique direction this is the closest axis-aligned code (each index axis is
    named by its dominant world component).
    """
    direction = tuple(float(v) for v in np.asarray(volume.direction, dtype=float).ravel())
    return str(sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction))


def reorient(volume: Volume, code: str = "LPS") -> Volume:
    """Permute and flip the index axes of ``volume`` to the orientation ``code``.

    Only the voxel order changes: every voxel keeps its value and its world position
    (mm). The spacing is permuted with the axes, the origin moves to the world position
    of the new first voxel, the direction becomes the one named by ``code`` (up to the
    residual rotation of an oblique volume). No interpolation is done.

    Parameters
    ----------
    volume
        Any 3D volume; the dtype is kept (bool included).
    code
        Target orientation, see :func:`validate_orientation_code`. Default ``"LPS"``.

    Returns
    -------
    Volume
        The reoriented volume; a copy even when already in ``code``.

    Raises
    ------
    ValueError
        If ``code`` is not a valid orientation code.
    """
    code = validate_orientation_code(code)
    image = sitk.DICOMOrient(to_sitk(volume), code)
    out = from_sitk(image)
    array = out.array if out.array.dtype == volume.array.dtype else out.array.astype(volume.array.dtype)
    return Volume(array, out.spacing, out.origin, out.direction)

"""Shape model files: a compressed ``.npz`` of arrays and a ``.json`` header beside it.

Format ``mskseg-shape-model``, version 1. All lengths are in millimetres. With ``n``
training subjects, ``N`` corresponding points and ``K`` modes:

``.npz`` arrays (all float64 except ``subjects``)

===============  ===========  ===========================================================
name             shape        meaning
===============  ===========  ===========================================================
``mean``         (N, 3)       mean shape in the model frame, mm
``modes``        (K, N, 3)    modes of variation, orthonormal when flattened to (K, 3N)
``variances``    (K,)         variance along each mode, mm^2, descending
``coefficients`` (n, K)       coefficients of each training subject, mm
``scales``       (n,)         per subject: scale of the model -> subject transform
``rotations``    (n, 3, 3)    per subject: proper rotation of that transform
``translations`` (n, 3)       per subject: translation of that transform, mm
``subjects``     (n,)         subject ids (unicode strings)
===============  ===========  ===========================================================

A subject's points are ``scale * (model_points @ rotation.T) + translation`` where
``model_points = mean + coefficients[i] @ modes`` (exact with all modes kept).

``.json`` header (an object)

* ``format``: ``"mskseg-shape-model"``; ``version``: ``1``; ``units``: ``"mm"``;
* ``n_points``, ``n_modes``, ``n_subjects`` (int), ``subjects`` (list of str);
* ``scale`` (bool): Procrustes alignment with scaling (True) or rigid (False);
* ``total_variance_mm2`` (float): total variance of the aligned shapes, all modes;
* ``explained_variance_ratio``, ``cumulative_variance_ratio``: lists of ``K`` floats;
* ``transform_convention``: :data:`TRANSFORM_CONVENTION`;
* ``arrays``: for each npz array, ``{"shape": [...], "dtype": str, "meaning": str}``;
* ``metadata``: free object (bone, fold, dataset, ...).

:func:`load_shape_model` checks format, version, units and every array's shape against
the header and raises :class:`ShapeModelFormatError` (a ValueError) naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mskseg.io.atomic import atomic_path
from mskseg.shape.model import ShapeModel
from mskseg.shape.procrustes import transforms_from_arrays, transforms_to_arrays

FORMAT = "mskseg-shape-model"
VERSION = 1
UNITS = "mm"
TRANSFORM_CONVENTION = "subject_points = scale * (model_points @ rotation.T) + translation"

#: meaning of each npz array, as written to the header
ARRAY_MEANINGS = {
    "mean": "mean shape in the model frame, mm",
    "modes": "modes of variation, orthonormal when flattened to (K, 3N)",
    "variances": "variance along each mode, mm^2, descending",
    "coefficients": "coefficients of each training subject along each mode, mm",
    "scales": "per subject: scale of the model -> subject similarity transform",
    "rotations": "per subject: proper rotation of the model -> subject transform",
    "translations": "per subject: translation of the model -> subject transform, mm",
    "subjects": "training subject ids",
}


class ShapeModelFormatError(ValueError):
    """A shape model file that does not follow the format."""


def default_json_path(npz_path: str | os.PathLike[str]) -> Path:
    """The header path beside an ``.npz``: its ``.npz`` ending replaced by ``.json``."""
    path = Path(npz_path)
    if path.suffix.lower() == ".npz":
        return path.with_suffix(".json")
    return path.with_name(path.name + ".json")


def _arrays(model: ShapeModel) -> dict[str, np.ndarray]:
    scales, rotations, translations = transforms_to_arrays(model.transforms)
    return {
        "mean": np.asarray(model.mean, dtype=np.float64),
        "modes": np.asarray(model.modes, dtype=np.float64),
        "variances": np.asarray(model.variances, dtype=np.float64),
        "coefficients": np.asarray(model.coefficients, dtype=np.float64),
        "scales": scales,
        "rotations": rotations,
        "translations": translations,
        "subjects": np.array(model.subjects, dtype=str),
    }


def _expected_shapes(n_points: int, n_modes: int, n_subjects: int) -> dict[str, tuple[int, ...]]:
    return {
        "mean": (n_points, 3),
        "modes": (n_modes, n_points, 3),
        "variances": (n_modes,),
        "coefficients": (n_subjects, n_modes),
        "scales": (n_subjects,),
        "rotations": (n_subjects, 3, 3),
        "translations": (n_subjects, 3),
        "subjects": (n_subjects,),
    }


def shape_model_header(model: ShapeModel) -> dict[str, Any]:
    """The JSON header of a model (see the module docstring)."""
    arrays = _arrays(model)
    return {
        "format": FORMAT,
        "version": VERSION,
        "units": UNITS,
        "n_points": model.n_points,
        "n_modes": model.n_modes,
        "n_subjects": model.n_subjects,
        "subjects": list(model.subjects),
        "scale": bool(model.scale),
        "total_variance_mm2": float(model.total_variance),
        "explained_variance_ratio": [float(v) for v in model.explained_ratio],
        "cumulative_variance_ratio": [float(v) for v in model.cumulative_ratio],
        "transform_convention": TRANSFORM_CONVENTION,
        "arrays": {name: {"shape": list(arr.shape), "dtype": "str" if name == "subjects" else "float64",
                          "meaning": ARRAY_MEANINGS[name]} for name, arr in arrays.items()},
        "metadata": model.metadata,
    }


def save_shape_model(model: ShapeModel, npz_path: str | os.PathLike[str],
                     json_path: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Write a model as an ``.npz`` of arrays and a JSON header, each atomically.

    Parameters
    ----------
    model
        The model; its ``metadata`` must be JSON-serialisable (TypeError otherwise,
        raised before anything is written).
    npz_path
        Destination of the arrays (conventionally ending in ``.npz``).
    json_path
        Destination of the header; None puts it beside ``npz_path`` (``.npz`` -> ``.json``),
        where :func:`load_shape_model` looks by default.

    Returns
    -------
    (Path, Path)
        The paths written.
    """
    npz = Path(npz_path)
    header_path = Path(json_path) if json_path is not None else default_json_path(npz)
    text = json.dumps(shape_model_header(model), indent=2, allow_nan=False) + "\n"
    with atomic_path(npz) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **_arrays(model))
    with atomic_path(header_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return npz, header_path


def _read_header(path: Path) -> dict[str, Any]:
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        if isinstance(err, FileNotFoundError):
            raise FileNotFoundError(f"shape model header {path} not found") from err
        raise ShapeModelFormatError(f"{path}: unreadable shape model header ({err})") from err
    if not isinstance(header, dict):
        raise ShapeModelFormatError(f"{path}: header must be a JSON object")
    if header.get("format") != FORMAT:
        raise ShapeModelFormatError(f"{path}: format is {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version") != VERSION:
        raise ShapeModelFormatError(f"{path}: version {header.get('version')!r} is not supported "
                                    f"(expected {VERSION})")
    if header.get("units") != UNITS:
        raise ShapeModelFormatError(f"{path}: units are {header.get('units')!r}, expected {UNITS!r}")
    required = ("n_points", "n_modes", "n_subjects", "subjects", "scale", "total_variance_mm2")
    missing = [key for key in required if key not in header]
    if missing:
        raise ShapeModelFormatError(f"{path}: header lacks {missing}")
    for key in ("n_points", "n_modes", "n_subjects"):
        if not isinstance(header[key], int) or isinstance(header[key], bool) or header[key] < 0:
            raise ShapeModelFormatError(f"{path}: {key} must be a non-negative integer")
    if not isinstance(header["scale"], bool):
        raise ShapeModelFormatError(f"{path}: scale must be true or false")
    if not isinstance(header["total_variance_mm2"], int | float) or isinstance(header["total_variance_mm2"], bool):
        raise ShapeModelFormatError(f"{path}: total_variance_mm2 must be a number")
    if not isinstance(header.get("metadata", {}), dict):
        raise ShapeModelFormatError(f"{path}: metadata must be an object")
    return header


def load_shape_model(npz_path: str | os.PathLike[str],
                     json_path: str | os.PathLike[str] | None = None) -> ShapeModel:
    """Read a model written by :func:`save_shape_model`.

    Parameters
    ----------
    npz_path
        The arrays file.
    json_path
        The header; None looks beside ``npz_path`` (``.npz`` -> ``.json``).

    Raises
    ------
    FileNotFoundError
        Either file is missing.
    ShapeModelFormatError
        (a ValueError) Wrong format, version or units; a header or array inconsistent
        with the other; a missing array. The message names the offending file.
    """
    npz = Path(npz_path)
    header_path = Path(json_path) if json_path is not None else default_json_path(npz)
    header = _read_header(header_path)
    n_points, n_modes, n_subjects = header["n_points"], header["n_modes"], header["n_subjects"]
    expected = _expected_shapes(n_points, n_modes, n_subjects)
    try:
        with np.load(npz, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ShapeModelFormatError(f"{npz}: unreadable shape model arrays ({err})") from err
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise ShapeModelFormatError(f"{npz}: lacks arrays {missing}")
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ShapeModelFormatError(f"{npz}: array {name} has shape {arrays[name].shape}, but header "
                                        f"{header_path} implies {shape}")
    subjects = [str(s) for s in arrays["subjects"]]
    if subjects != [str(s) for s in header["subjects"]]:
        raise ShapeModelFormatError(f"{npz}: subjects differ from those of header {header_path}")
    try:
        transforms = transforms_from_arrays(arrays["scales"], arrays["rotations"], arrays["translations"])
        return ShapeModel(
            mean=arrays["mean"],
            modes=arrays["modes"],
            variances=arrays["variances"],
            total_variance=float(header["total_variance_mm2"]),
            coefficients=arrays["coefficients"],
            transforms=transforms,
            subjects=subjects,
            scale=header["scale"],
            metadata=header.get("metadata", {}),
        )
    except ValueError as err:
        raise ShapeModelFormatError(f"{npz}: invalid shape model ({err})") from err

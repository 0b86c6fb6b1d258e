"""The training cases' arrays on disk, read piece by piece: a training's memory does not grow with its subjects.

When a training starts, :func:`cache_cases` writes each subject's image (float32), encoded target (the
smallest unsigned type that holds its classes) and weight map (float32) once as uncompressed ``.npy``
files into a folder of the training's work folder, with a JSON record of what the datasets need besides
the arrays: shape, geometry, the image minimum and, for 3D patches, a bounded sample of the foreground
voxels (:func:`mskseg.nn.data.foreground_indices`). The record is written last, so a subject with a
record is complete; a training killed while it writes the cache and started again reuses the complete
subjects and writes the others.

The cases it returns hold :class:`CachedArray` handles instead of arrays. A handle opens a read-only
memory map of its file for each access (``take``, ``[...]``, :meth:`CachedArray.mapped`), copies what
was asked for and drops the mapping, so the pages a training touches do not stay in its resident
memory, in the main process or in DataLoader workers (a handle pickles as its path and numbers). For a
plane view the files hold the arrays with the slice axis first (a slice is one contiguous read); the
handles present them in the original axis order.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mskseg.io.atomic import abandoned, atomic_path
from mskseg.io.tables import read_json, write_json
from mskseg.nn.data import Case, foreground_indices, load_case, plane_axis

#: a cache written by another version of this module is written again
_VERSION = 1


@dataclass(frozen=True)
class CachedArray:
    """An array in a ``.npy`` file, read on each access; what the datasets use of an ndarray.

    ``shape`` and ``dtype`` are the array's as presented: the file holds ``array.transpose(order)``
    in its own (possibly smaller) type, converted to ``dtype`` on reading. ``minimum``: the array's
    smallest value, known without reading it (:meth:`min`). Parts read are C-ordered copies; the
    whole array (:meth:`read`) comes back in the memory ``layout`` (``"C"`` or ``"F"``) the array had
    when it was cached, so that a sum over it adds in the same order as over the original.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    order: tuple[int, ...]
    minimum: float | None = None
    layout: str = "C"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @contextlib.contextmanager
    def mapped(self) -> Iterator[np.ndarray]:
        """A read-only memory map of the array in its presented axis order (in the file's type); the mapping
        is dropped on leaving the block, so nothing read from it may be kept without a copy."""
        mapping = np.load(self.path, mmap_mode="r")
        try:
            yield np.transpose(mapping.view(np.ndarray), np.argsort(self.order))
        finally:
            del mapping

    def take(self, indices: Any, axis: int | None = None, out: np.ndarray | None = None,
             mode: str = "raise") -> np.ndarray:
        """``np.take`` of the array, reading only the slices asked for."""
        with self.mapped() as array:
            taken = np.take(array, indices, axis=axis, mode=mode)
        if out is None:
            return taken.astype(self.dtype, copy=False)
        out[...] = taken
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        with self.mapped() as array:  # a C-ordered copy, as the array in memory is
            return np.array(array[key], dtype=self.dtype, order="C")

    def min(self) -> float:
        """The smallest value (from the record; read when it is unknown)."""
        if self.minimum is not None:
            return self.minimum
        with self.mapped() as array:
            return float(array.min())

    def read(self) -> np.ndarray:
        """The whole array in memory, in its original layout."""
        with self.mapped() as array:
            return np.array(array, dtype=self.dtype, order=self.layout)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.read()
        return array if dtype is None else array.astype(dtype, copy=False)


@contextlib.contextmanager
def mapped(array: np.ndarray | CachedArray) -> Iterator[np.ndarray]:
    """The array itself, or a :class:`CachedArray`'s memory map for the duration of the block."""
    if isinstance(array, CachedArray):
        with array.mapped() as view:
            yield view
    else:
        yield array


def _key(name: str) -> str:
    """A file-name stem for a subject: its name where that is safe, with a short hash of it."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60]
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _target_dtype(n_classes: int) -> np.dtype:
    return np.dtype(np.uint8 if n_classes <= 256 else np.uint16)


@dataclass(frozen=True)
class _Files:
    image: Path
    mask: Path | None
    weight: Path | None

    def wanted(self, foreground: bool) -> set[str]:
        """The arrays a cached subject of these files holds."""
        return {"image"} | ({"target"} if self.mask else set()) | ({"weight"} if self.weight else set()) | (
            {"foreground"} if self.mask and foreground else set())


def _write_array(path: Path, array: np.ndarray, order: Sequence[int], dtype: Any) -> dict[str, Any]:
    stored = np.ascontiguousarray(np.transpose(array, order), dtype=dtype)
    with atomic_path(path) as tmp, tmp.open("wb") as stream:
        np.save(stream, stored)
    layout = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    return {"file": path.name, "dtype": stored.dtype.str, "shape": list(stored.shape), "layout": layout}


def _subject_order(direction: np.ndarray, plane: str | None) -> tuple[int, ...]:
    """The axes as the files hold them: the plane's slice axis first."""
    if plane is None:
        return (0, 1, 2)
    axis = plane_axis(direction, plane)
    return (axis, *(a for a in range(3) if a != axis))


def _write_subject(folder: Path, name: str, files: _Files, label_values: Sequence[int], plane: str | None,
                   foreground: bool) -> dict[str, Any]:
    case, _ = load_case(name, files.image, mask=files.mask, weight=files.weight, label_values=label_values)
    order = _subject_order(case.direction, plane)
    stem = _key(name)
    arrays = {"image": _write_array(folder / f"{stem}_image.npy", case.image, order, np.float32)}
    if case.target is not None:
        dtype = _target_dtype(len(label_values) + 1)
        arrays["target"] = _write_array(folder / f"{stem}_target.npy", case.target, order, dtype)
        if foreground:
            indices = foreground_indices(case.target)
            arrays["foreground"] = _write_array(folder / f"{stem}_foreground.npy", indices, (0,), indices.dtype)
    if case.weight is not None:
        arrays["weight"] = _write_array(folder / f"{stem}_weight.npy", case.weight, order, np.float32)
    record = {"version": _VERSION, "name": name, "shape": list(case.image.shape), "order": list(order),
              "spacing": list(case.spacing), "direction": np.asarray(case.direction, float).tolist(),
              "minimum": float(case.image.min()), "labels": [int(v) for v in label_values], "arrays": arrays}
    write_json(folder / f"{stem}.json", record)  # last: a subject with a record is complete
    return record


def _reusable(folder: Path, name: str, files: _Files, label_values: Sequence[int], plane: str | None,
              foreground: bool) -> dict[str, Any] | None:
    """A subject's record when it fits this request and its files hold arrays of the recorded types and shapes."""
    path = folder / f"{_key(name)}.json"
    try:
        record = read_json(path)
        if record.get("version") != _VERSION or record.get("name") != name or \
                record.get("labels") != [int(v) for v in label_values] or \
                set(record["arrays"]) != files.wanted(foreground) or \
                tuple(record["order"]) != _subject_order(np.asarray(record["direction"], dtype=float), plane):
            return None
        for entry in record["arrays"].values():
            array = np.load(folder / entry["file"], mmap_mode="r")
            same = array.dtype.str == entry["dtype"] and list(array.shape) == entry["shape"]
            del array
            if not same:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return record


def _case(folder: Path, record: dict[str, Any]) -> Case:
    shape, order, arrays = tuple(record["shape"]), tuple(record["order"]), record["arrays"]

    def handle(what: str, dtype: type, minimum: float | None = None) -> CachedArray | None:
        if what not in arrays:
            return None
        return CachedArray(folder / arrays[what]["file"], shape, np.dtype(dtype), order, minimum,
                           arrays[what]["layout"])

    foreground = None
    if "foreground" in arrays:
        entry = arrays["foreground"]
        foreground = CachedArray(folder / entry["file"], tuple(entry["shape"]), np.dtype(entry["dtype"]), (0,))
    return Case(record["name"], handle("image", np.float32, float(record["minimum"])), handle("target", np.int64),
                handle("weight", np.float32), tuple(float(s) for s in record["spacing"]),
                np.asarray(record["direction"], dtype=float), foreground=foreground)


def cache_cases(folder: str | os.PathLike, names: Sequence[str], images: Sequence[str | os.PathLike],
                masks: Sequence[str | os.PathLike] | None = None, weights: Sequence[str | os.PathLike] | None = None,
                *, label_values: Sequence[int], plane: str | None = None, foreground: bool = False,
                logger: logging.Logger | None = None) -> list[Case]:
    """Cases of subjects ``names`` whose arrays are read from ``folder`` (written there first where missing).

    Parameters
    ----------
    folder : path
        The cache folder (created), inside the training's work folder: what is there belongs to the
        same inputs and labels.
    names, images, masks, weights
        Parallel lists, as :func:`mskseg.nn.training.load_cases` takes them (masks and weight maps optional).
    label_values : sequence of int
        The mask values of classes 1, 2, ... (:func:`mskseg.nn.data.encode_labels`).
    plane : str, optional
        The plane whose slices the training reads: the files hold them contiguously.
    foreground : bool
        Also keep each case's :func:`mskseg.nn.data.foreground_indices` (for 3D patches).

    Returns
    -------
    list of Case
        In the order of ``names``; arrays are :class:`CachedArray` handles, ``image.min()`` needs no read.
    """
    logger = logger or logging.getLogger(__name__)
    if len(images) != len(names) or (masks and len(masks) != len(names)) or (weights and len(weights) != len(names)):
        raise ValueError(f"{len(names)} subjects but {len(images)} images, {len(masks or [])} masks, "
                         f"{len(weights or [])} weight maps")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():  # what a killed writer left
        if abandoned(item.name):
            item.unlink(missing_ok=True)
    cases, written = [], 0
    for i, name in enumerate(names):
        files = _Files(Path(images[i]), Path(masks[i]) if masks else None, Path(weights[i]) if weights else None)
        record = _reusable(folder, name, files, label_values, plane, foreground)
        if record is None:
            record = _write_subject(folder, name, files, label_values, plane, foreground)
            written += 1
        cases.append(_case(folder, record))
    logger.info("case cache %s: %d of %d subjects written, the others reused", folder, written, len(names))
    return cases


def remove_cache(folder: str | os.PathLike) -> None:
    """Delete a cache folder (it is rebuilt from the inputs when needed)."""
    shutil.rmtree(folder, ignore_errors=True)


__all__ = ["CachedArray", "cache_cases", "mapped", "remove_cache"]

"""The preprocessing pipeline for an image and its (optional) mask, and its inverse.

:func:`preprocess_pair` reorients, resamples, normalises and crops, and returns a
JSON-serialisable record of what it did; :func:`restore_to_original` maps a label map
from the preprocessed grid back onto the original image grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from mskseg.preprocess.crop import bounding_box, crop
from mskseg.preprocess.intensity import MODALITIES, normalise_with_stats
from mskseg.preprocess.orient import orientation_code, reorient, validate_orientation_code
from mskseg.preprocess.resample import (
    resample,
    resample_like,
    validate_interpolator,
    validate_spacing,
)
from mskseg.volume import Volume


@dataclass(frozen=True)
class PreprocessSettings:
    """Settings of :func:`preprocess_pair` (validated on construction).

    Attributes
    ----------
    orientation
        Target orientation code (see :func:`mskseg.preprocess.orient.reorient`).
    spacing
        Target spacing in mm per index axis (after reorientation), or ``None`` to keep it.
    image_interpolator, mask_interpolator
        Interpolators of :func:`mskseg.preprocess.resample.resample` for image and mask.
    modality
        ``"mri"`` (clipped z-score) or ``"ct"`` (quartile scaling).
    clip_percentiles
        ``(lower, upper)`` percentiles for MRI; ignored for CT.
    crop_labels
        Labels of the mask to crop around; empty: no cropping.
    crop_margin_mm
        Margin (mm) around the labels' bounding box.
    keep_labels
        The mask's label values kept; every other value becomes background (0) before anything else is
        done to the mask (a dataset that declares fewer structures than its masks hold, e.g. femoral
        cartilage alone of OAI-ZIB's four: ``undeclared_labels: background``). ``None``: all kept.
    """

    orientation: str = "LPS"
    spacing: tuple[float, float, float] | None = None
    image_interpolator: str = "linear"
    mask_interpolator: str = "nearest"
    modality: str = "mri"
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    crop_labels: tuple[int, ...] = ()
    crop_margin_mm: float = 10.0
    keep_labels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("orientation", validate_orientation_code(self.orientation))
        if self.spacing is not None:
            set_("spacing", validate_spacing(self.spacing))
        validate_interpolator(self.image_interpolator)
        validate_interpolator(self.mask_interpolator)
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; expected one of {', '.join(MODALITIES)}")
        try:
            lo, hi = (float(v) for v in self.clip_percentiles)
        except (TypeError, ValueError):
            raise ValueError(f"clip_percentiles must be two numbers, got {self.clip_percentiles!r}") from None
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"clip_percentiles must satisfy 0 <= lower < upper <= 100, got {(lo, hi)}")
        set_("clip_percentiles", (lo, hi))
        labels = self.crop_labels
        if isinstance(labels, (int, np.integer)):
            labels = (labels,)
        try:
            labels = tuple(int(v) for v in labels)
        except (TypeError, ValueError):
            raise ValueError(f"crop_labels must be integers, got {self.crop_labels!r}") from None
        set_("crop_labels", labels)
        margin = float(self.crop_margin_mm)
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"crop_margin_mm must be a finite number >= 0, got {self.crop_margin_mm!r}")
        set_("crop_margin_mm", margin)
        if self.keep_labels is not None:
            try:
                keep = tuple(int(v) for v in self.keep_labels)
            except (TypeError, ValueError):
                raise ValueError(f"keep_labels must be integers, got {self.keep_labels!r}") from None
            if not keep or min(keep) <= 0:
                raise ValueError(f"keep_labels must be positive label values, got {list(keep)}")
            set_("keep_labels", keep)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreprocessSettings:
        """Settings from a mapping (e.g. a YAML config section); missing keys take defaults.

        Lists are accepted for tuples. Unknown keys raise a ValueError naming them.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing settings: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples as lists) that :meth:`from_dict` reads back (``keep_labels`` only
        when set, so that the settings of datasets without it read as before)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if not (k == "keep_labels" and v is None)}


def geometry_record(volume: Volume) -> dict[str, Any]:
    """``shape``, ``spacing`` (mm), ``origin`` (mm), ``direction`` (3x3, row-major) and
    ``orientation`` of ``volume`` as plain JSON-serialisable lists."""
    return {"shape": list(volume.shape), "spacing": list(volume.spacing),
            "origin": list(volume.origin),
            "direction": [[float(v) for v in row] for row in volume.direction],
            "orientation": orientation_code(volume), "dtype": str(volume.array.dtype)}


def preprocess_pair(image: Volume, mask: Volume | None,
                    settings: PreprocessSettings) -> tuple[Volume, Volume | None, dict[str, Any]]:
    """Reorient, resample, normalise and crop an image and its optional mask.

    Steps, in order:

    1. reorient both to ``settings.orientation`` (no interpolation);
    2. if ``settings.spacing``: resample the image (``image_interpolator``, float32) to that
       spacing (corner-aligned, see :func:`~mskseg.preprocess.resample.resample`) and the
       mask onto exactly the image's new grid (``mask_interpolator``, dtype kept);
    3. normalise the image intensities for ``settings.modality`` (statistics over all
       voxels of the reoriented/resampled image);
    4. if ``settings.crop_labels`` and a mask is given: crop both to the bounding box of
       those labels in the mask, grown by ``crop_margin_mm``.

    Parameters
    ----------
    image
        The image on its original grid.
    mask
        A label map on the same grid as ``image`` (within the tolerances of
        :meth:`Volume.geometry_mismatches`), or ``None``.
    settings
        What to do.

    Returns
    -------
    (image, mask, record)
        The preprocessed image (float32), mask (or ``None``) and a JSON-serialisable
        record with keys ``settings``, ``input`` (image and mask geometry),
        ``orientation`` (``before``/``after``), ``resampled`` (geometry after step 2 or
        ``None``), ``intensity`` (statistics used), ``crop`` (labels, margin, box and
        pre-crop shape, or ``None``) and ``output`` (geometry of the result).

    Raises
    ------
    ValueError
        If the mask's grid differs from the image's, a crop label is absent, or
        normalisation fails (constant image, NaN).
    """
    if mask is not None:
        mismatches = image.geometry_mismatches(mask)
        if mismatches:
            raise ValueError("mask is not on the image grid: " + "; ".join(mismatches))
    record: dict[str, Any] = {
        "settings": settings.to_dict(),
        "input": {"image": geometry_record(image),
                  "mask": None if mask is None else geometry_record(mask)},
        "orientation": {"before": orientation_code(image), "after": None},
    }

    img = reorient(image, settings.orientation)
    msk = None if mask is None else reorient(mask, settings.orientation).with_geometry_of(img)
    record["orientation"]["after"] = orientation_code(img)
    if msk is not None and settings.keep_labels is not None:
        dropped = ~np.isin(msk.array, (0, *settings.keep_labels))
        record["dropped_labels"] = {int(v): int(c) for v, c in zip(*np.unique(msk.array[dropped],
                                                                                return_counts=True), strict=True)}
        msk = msk.with_array(np.where(dropped, 0, msk.array).astype(msk.array.dtype))

    record["resampled"] = None
    if settings.spacing is not None:
        img = resample(img, settings.spacing, settings.image_interpolator)
        if msk is not None:
            msk = resample_like(msk, img, settings.mask_interpolator)
        record["resampled"] = geometry_record(img)

    params: dict[str, Any] = {}
    if settings.modality == "mri":
        params = {"lower_percentile": settings.clip_percentiles[0],
                  "upper_percentile": settings.clip_percentiles[1]}
    img, stats = normalise_with_stats(img, settings.modality, **params)
    record["intensity"] = stats

    record["crop"] = None
    if settings.crop_labels and msk is not None:
        box = bounding_box(msk, settings.crop_labels, settings.crop_margin_mm)
        record["crop"] = {"labels": list(settings.crop_labels),
                          "margin_mm": settings.crop_margin_mm,
                          "box": [list(pair) for pair in box],
                          "shape_before": list(img.shape)}
        img = crop(img, box)
        msk = crop(msk, box)

    record["output"] = {"image": geometry_record(img),
                        "mask": None if msk is None else geometry_record(msk)}
    return img, msk, record


def restore_to_original(prediction: Volume, original_reference: Volume,
                        interpolator: str = "nearest") -> Volume:
    """Map a label map on the preprocessed grid back onto the original image grid.

    Resamples ``prediction`` in world coordinates onto ``original_reference``'s grid
    (undoing reorientation, resampling and cropping at once); voxels outside the
    preprocessed (cropped) grid get label 0.

    Parameters
    ----------
    prediction
        Label map on the grid returned by :func:`preprocess_pair`.
    original_reference
        The original image (only its geometry is used).
    interpolator
        ``"nearest"`` (default) or ``"label_gaussian"`` keep the label dtype; ``"linear"``
        or ``"bspline"`` give float32 (e.g. for probability maps).

    Returns
    -------
    Volume
        With exactly ``original_reference``'s shape, spacing, origin and direction.
    """
    return resample_like(prediction, original_reference, interpolator, default_value=0.0)


__all__ = ["PreprocessSettings", "geometry_record", "preprocess_pair", "restore_to_original"]

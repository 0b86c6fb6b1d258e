"""Preprocessing of volumes: reorientation, resampling, intensity normalisation, cropping.

Pure functions on :class:`mskseg.volume.Volume` (no file IO). :func:`preprocess_pair`
chains them for an image and its mask and records what it did; :func:`restore_to_original`
maps a prediction back onto the original grid.
"""

from mskseg.preprocess.crop import Box, bounding_box, crop, margin_voxels
from mskseg.preprocess.intensity import (
    ct_quartile,
    ct_quartile_stats,
    normalise,
    normalise_with_stats,
    zscore_clip,
    zscore_clip_stats,
)
from mskseg.preprocess.orient import orientation_code, reorient, validate_orientation_code
from mskseg.preprocess.pipeline import (
    PreprocessSettings,
    geometry_record,
    preprocess_pair,
    restore_to_original,
)
from mskseg.preprocess.resample import (
    INTERPOLATORS,
    physical_extent,
    resample,
    resample_like,
    resampled_grid,
    validate_spacing,
)

__all__ = [
    "INTERPOLATORS",
    "Box",
    "PreprocessSettings",
    "bounding_box",
    "crop",
    "ct_quartile",
    "ct_quartile_stats",
    "geometry_record",
    "margin_voxels",
    "normalise",
    "normalise_with_stats",
    "orientation_code",
    "physical_extent",
    "preprocess_pair",
    "reorient",
    "resample",
    "resample_like",
    "resampled_grid",
    "restore_to_original",
    "validate_orientation_code",
    "validate_spacing",
    "zscore_clip",
    "zscore_clip_stats",
]

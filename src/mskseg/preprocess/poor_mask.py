"""A subject's poor (degraded) mask moved onto its preprocessed grid, for pre-training (hip paper)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mskseg.io.pairs import HeaderFix, apply_mask_geometry
from mskseg.preprocess.resample import resample_like
from mskseg.volume import Volume


def poor_mask_on_grid(raw_image: Volume, poor: Volume, target: Volume, labels: Mapping[str, int], mask_geometry: str,
                      *, poor_name: str = "poor mask", image_name: str = "its image") -> tuple[Volume, HeaderFix]:
    """``poor`` (on the grid of ``raw_image``) resampled, nearest neighbour, onto the grid of ``target``
    (the preprocessed image); outside the raw grid it is background.

    The mask is first re-headered from its image under the dataset's ``mask_geometry`` policy; then it
    must share the raw image's grid and hold only the dataset's label values. Returns the moved mask
    and what re-headering changed.

    Raises
    ------
    ValueError
        Naming ``poor_name``: the mask is not on its image's grid, or holds an unknown label value.
    """
    mask, fix = apply_mask_geometry(raw_image, poor, mask_geometry)
    mismatches = raw_image.geometry_mismatches(mask)
    if mismatches:
        raise ValueError(f"{poor_name}: poor mask is not on the grid of its image {image_name}: "
                         + "; ".join(mismatches))
    found = set(np.unique(mask.array).tolist()) - {0, *labels.values()}
    if found:
        raise ValueError(f"{poor_name}: label value(s) {sorted(found)} are not among the dataset's labels "
                         f"{dict(labels)}")
    return resample_like(mask, target, "nearest", default_value=0.0), fix


__all__ = ["poor_mask_on_grid"]

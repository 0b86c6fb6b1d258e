"""Rule preprocess_poor_mask: a subject's poor mask moved onto its preprocessed image grid."""

from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np

from mskseg.io.pairs import apply_mask_geometry
from mskseg.io.volumes import read_volume, write_volume
from mskseg.logs import setup_logging
from mskseg.preprocess.resample import resample_like


def main(*, poor: Path, raw_image: Path, image: Path, mask: Path, labels: dict, mask_geometry: str,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "preprocess_poor_mask")
    raw, target = read_volume(raw_image), read_volume(image)
    poor_mask, fix = apply_mask_geometry(raw, read_volume(poor), mask_geometry)
    mismatches = raw.geometry_mismatches(poor_mask)
    if mismatches:
        raise ValueError(f"{poor}: poor mask is not on the grid of its image {raw_image}: " + "; ".join(mismatches))
    found = set(np.unique(poor_mask.array).tolist()) - {0, *labels.values()}
    if found:
        raise ValueError(f"{poor}: label value(s) {sorted(found)} are not among the dataset's labels {labels}")
    moved = resample_like(poor_mask, target, "nearest", default_value=0.0)
    write_volume(moved, mask)
    logger.info("%s -> %s on the grid of %s%s", poor, mask, image, " (re-headered)" if fix.changed else "")


if __name__ == "__main__":
    main(poor=Path(snakemake.input.poor), raw_image=Path(snakemake.input.raw_image),  # noqa: F821
         image=Path(snakemake.input.image), mask=Path(snakemake.output.mask),  # noqa: F821
         labels=dict(snakemake.params.labels), mask_geometry=snakemake.params.mask_geometry,  # noqa: F821
         log=snakemake.log[0])  # noqa: F821

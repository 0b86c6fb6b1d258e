"""Rule preprocess_poor_mask: a subject's poor mask moved onto its preprocessed image grid."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.volumes import read_volume, write_volume
from mskseg.preprocess.poor_mask import poor_mask_on_grid
from mskseg.workflow.logs import setup_logging


def main(*, poor: Path, raw_image: Path, image: Path, mask: Path, labels: dict, mask_geometry: str,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "preprocess_poor_mask")
    moved, fix = poor_mask_on_grid(read_volume(raw_image), read_volume(poor), read_volume(image), labels,
                                   mask_geometry, poor_name=str(poor), image_name=str(raw_image))
    write_volume(moved, mask)
    logger.info("%s -> %s on the grid of %s%s", poor, mask, image, " (re-headered)" if fix.changed else "")


if __name__ == "__main__":
    main(poor=Path(snakemake.input.poor), raw_image=Path(snakemake.input.raw_image),  # noqa: F821
         image=Path(snakemake.input.image), mask=Path(snakemake.output.mask),  # noqa: F821
         labels=dict(snakemake.params.labels), mask_geometry=snakemake.params.mask_geometry,  # noqa: F821
         log=snakemake.log[0])  # noqa: F821

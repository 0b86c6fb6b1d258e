"""Rule preprocess_subject: reorient, resample, normalise and crop one subject's image and mask."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io import read_volume, write_volume
from mskseg.io.pairs import apply_mask_geometry
from mskseg.io.tables import write_json
from mskseg.preprocess import PreprocessSettings, preprocess_pair
from mskseg.workflow.logs import setup_logging


def main(*, image_in: Path, label_in: Path, settings: PreprocessSettings, mask_geometry: str, image: Path,
         mask: Path, record: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "preprocess_subject")
    raw_image = read_volume(image_in)
    raw_mask, fix = apply_mask_geometry(raw_image, read_volume(label_in), mask_geometry)
    if fix.changed:
        logger.info("mask re-headered from its image: %s", "; ".join(fix.changes))
    out_image, out_mask, done = preprocess_pair(raw_image, raw_mask, settings)
    done["mask_reheadered"] = list(fix.changes)
    done["sources"] = {"image": str(image_in), "label": str(label_in)}
    write_volume(out_image, image)
    write_volume(out_mask, mask)
    write_json(record, done, sort_keys=True)
    logger.info("%s -> %s: shape %s -> %s, spacing %s mm", image_in, image, raw_image.shape, out_image.shape,
                tuple(round(s, 4) for s in out_image.spacing))


if __name__ == "__main__":
    main(image_in=Path(snakemake.input.image), label_in=Path(snakemake.input.label),  # noqa: F821
         settings=PreprocessSettings.from_dict(snakemake.params.settings),  # noqa: F821
         mask_geometry=snakemake.params.mask_geometry, image=Path(snakemake.output.image),  # noqa: F821
         mask=Path(snakemake.output.mask), record=Path(snakemake.output.record), log=snakemake.log[0])  # noqa: F821

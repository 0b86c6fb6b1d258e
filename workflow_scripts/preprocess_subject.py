"""Rule preprocess_subject: reorient, resample, normalise and crop one subject's image and mask."""

import json
from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io import read_volume, write_text, write_volume
from mskseg.io.pairs import apply_mask_geometry
from mskseg.logs import setup_logging
from mskseg.preprocess import PreprocessSettings, preprocess_pair


def main(*, image_in: Path, label_in: Path, settings: dict[str, Any], mask_geometry: str, image: Path,
         mask: Path, record: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "preprocess_subject")
    raw_image = read_volume(image_in)
    raw_mask, fix = apply_mask_geometry(raw_image, read_volume(label_in), mask_geometry)
    if fix.changed:
        logger.info("mask re-headered from its image: %s", "; ".join(fix.changes))
    out_image, out_mask, done = preprocess_pair(raw_image, raw_mask, PreprocessSettings.from_dict(settings))
    done["mask_reheadered"] = list(fix.changes)
    done["sources"] = {"image": str(image_in), "label": str(label_in)}
    write_volume(out_image, image)
    write_volume(out_mask, mask)
    write_text(record, json.dumps(done, indent=2, sort_keys=True, default=float))
    logger.info("%s -> %s: shape %s -> %s, spacing %s mm", image_in, image, raw_image.shape, out_image.shape,
                tuple(round(s, 4) for s in out_image.spacing))


if __name__ == "__main__":
    main(image_in=Path(snakemake.input.image), label_in=Path(snakemake.input.label),  # noqa: F821
         settings=snakemake.params.settings, mask_geometry=snakemake.params.mask_geometry,  # noqa: F821
         image=Path(snakemake.output.image), mask=Path(snakemake.output.mask),  # noqa: F821
         record=Path(snakemake.output.record), log=snakemake.log[0])  # noqa: F821

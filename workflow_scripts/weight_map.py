"""Rule weight_map: the hip paper's distance weight map of one subject's preprocessed mask."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.volumes import read_volume, write_volume
from mskseg.nn.weightmap import WeightMapSettings, weight_map_volume
from mskseg.workflow.logs import setup_logging


def main(*, mask: Path, weight: Path, settings: WeightMapSettings, log: Path | None = None) -> None:
    logger = setup_logging(log, "weight_map")
    result = weight_map_volume(read_volume(mask), settings)
    write_volume(result, weight)
    s = settings
    logger.info("%s -> %s: w0 %s, sigma %s mm, erosion %s mm; weights %.3f..%.3f", mask, weight, s.w0, s.sigma_mm,
                s.erode_radius_mm, float(result.array.min()), float(result.array.max()))


if __name__ == "__main__":
    main(mask=Path(snakemake.input.mask), weight=Path(snakemake.output.weight),  # noqa: F821
         settings=WeightMapSettings(**snakemake.params.settings), log=snakemake.log[0])  # noqa: F821

"""Rule training_size_study: power-law fit of one metric against the number of training subjects (Desai et al.)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_tables, write_table
from mskseg.reporting.plots import power_law_plot
from mskseg.reporting.study import training_size_fits
from mskseg.workflow.logs import setup_logging


def main(*, metrics: list[Path], sizes: dict, metric: str, fits: Path, png: Path, dataset: str,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "training_size_study")
    table, points, models = training_size_fits(read_tables(metrics), {k: int(v) for k, v in sizes.items()}, [metric])
    write_table(table, fits)
    power_law_plot(points[metric], models[metric], png.with_suffix(""), metric=metric,
                   title=f"{dataset}: {metric} against training subjects")
    logger.info("%s: power-law fits of %s\n%s", dataset, metric, table.to_string(index=False))


if __name__ == "__main__":
    main(metrics=[Path(p) for p in snakemake.input.metrics], sizes=dict(snakemake.params.sizes),  # noqa: F821
         metric=snakemake.wildcards.metric, fits=Path(snakemake.output.fits),  # noqa: F821
         png=Path(snakemake.output.png), dataset=snakemake.wildcards.dataset, log=snakemake.log[0])  # noqa: F821

"""Rule fov_curve: Dice against the normalised field of view per method and structure, table and plot."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_tables, write_table
from mskseg.reporting.plots import fov_plot
from mskseg.reporting.tables import fov_curve
from mskseg.workflow.logs import setup_logging


def main(*, fovs: list[Path], dataset: str, settings: dict, curve: Path, png: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "fov_curve")
    fov = read_tables(fovs)
    fov = fov[fov["structure"].isin(settings["fov_structures"])]
    table = fov_curve(fov, bins=int(settings["fov_bins"]))
    write_table(table, curve)
    fov_plot(table, png.with_suffix(""), title=f"{dataset}: Dice along the normalised field of view")
    logger.info("%s: %d methods, %d structures, %d bins", dataset, table["method"].nunique(),
                table["structure"].nunique(), int(settings["fov_bins"]))


if __name__ == "__main__":
    main(fovs=[Path(p) for p in snakemake.input.fovs], dataset=snakemake.wildcards.dataset,  # noqa: F821
         settings=dict(snakemake.params.settings), curve=Path(snakemake.output.curve),  # noqa: F821
         png=Path(snakemake.output.png), log=snakemake.log[0])  # noqa: F821

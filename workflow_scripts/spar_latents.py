"""Rule spar_latents: the predicted and reference shape codes of a regularised training, per epoch (PCA)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.reporting.latents import plot_latents
from mskseg.workflow.logs import setup_logging


def main(*, latents: Path, figure: Path, title: str, log: Path | None = None) -> None:
    logger = setup_logging(log, "spar_latents")
    plot_latents(latents, figure, title=title)
    logger.info("%s -> %s", latents, figure)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(latents=Path(sm.input.latents), figure=Path(sm.output.figure),
         title=f"{sm.wildcards.dataset}: {sm.wildcards.method}, fold {sm.wildcards.fold}", log=sm.log[0])

"""Rule batch_metrics: one method's metrics, confusion counts and per-slice Dice of a batch of subjects."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_table, write_table
from mskseg.metrics.collect import collect
from mskseg.workflow.checkpoints import test_folds
from mskseg.workflow.logs import setup_logging


def main(*, metrics: list[Path], confusions: list[Path], fovs: list[Path], subjects: list[str], splits: Path,
         method: str, table: Path, confusion: Path, fov: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "batch_metrics")
    out = collect(method, subjects, test_folds(read_table(splits)), [read_table(p) for p in metrics],
                  [read_table(p) for p in confusions], [read_table(p) for p in fovs])
    write_table(out.metrics, table)
    write_table(out.confusion, confusion)
    write_table(out.fov, fov)
    logger.info("%s: %d subjects; mean Dice per structure:\n%s", method, len(subjects),
                out.metrics.groupby("structure", sort=False)["dice"].mean().to_string())


if __name__ == "__main__":
    main(metrics=[Path(p) for p in snakemake.input.metrics],  # noqa: F821
         confusions=[Path(p) for p in snakemake.input.confusions],  # noqa: F821
         fovs=[Path(p) for p in snakemake.input.fovs], subjects=list(snakemake.params.subjects),  # noqa: F821
         splits=Path(snakemake.input.splits), method=snakemake.wildcards.method,  # noqa: F821
         table=Path(snakemake.output.table), confusion=Path(snakemake.output.confusion),  # noqa: F821
         fov=Path(snakemake.output.fov), log=snakemake.log[0])  # noqa: F821

"""Rule preprocess_table: the batches' preprocessing tables in one, with a summary of the grids in the log."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import gather, read_table, write_table
from mskseg.workflow.logs import setup_logging


def main(*, tables: list[Path], table: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "preprocess_table")
    frame = gather([read_table(p) for p in tables])
    write_table(frame, table)
    logger.info("%d subjects from %d batches -> %s", len(frame), len(tables), table)
    for column in ("output.image.shape", "output.image.spacing"):
        if column in frame:
            counts = frame[column].value_counts()
            logger.info("%s: %s", column, "; ".join(f"{v} ({n} subjects)" for v, n in counts.items()))


if __name__ == "__main__":
    main(tables=[Path(p) for p in snakemake.input.tables], table=Path(snakemake.output.table),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821

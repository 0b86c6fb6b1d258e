"""Rule preprocess_batch: a batch of subjects' preprocessing records (flattened) in one table."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_json, records_table, write_table
from mskseg.workflow.logs import setup_logging


def main(*, records: list[Path], subjects: list[str], table: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "preprocess_batch")
    frame = records_table([read_json(p) for p in records], subjects)
    write_table(frame, table)
    logger.info("%d subjects (%s ... %s) -> %s", len(frame), subjects[0], subjects[-1], table)


if __name__ == "__main__":
    main(records=[Path(p) for p in snakemake.input.records], subjects=list(snakemake.params.subjects),  # noqa: F821
         table=Path(snakemake.output.table), log=snakemake.log[0])  # noqa: F821

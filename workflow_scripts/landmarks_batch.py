"""Rule landmarks_batch: a batch of subjects' registration and correspondence records in one table."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_json, records_table, write_table
from mskseg.workflow.logs import setup_logging


def main(*, records: list[Path], subjects: list[str], table: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "landmarks_batch")
    frame = records_table([read_json(p) for p in records], subjects)
    write_table(frame, table)
    logger.info("%d structures of %d subjects -> %s", len(frame), len(set(subjects)), table)


if __name__ == "__main__":
    main(records=[Path(p) for p in snakemake.input.records], subjects=list(snakemake.params.subjects),  # noqa: F821
         table=Path(snakemake.output.table), log=snakemake.log[0])  # noqa: F821

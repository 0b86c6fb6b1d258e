"""Checkpoint qc_summary: gather the per-subject QC records into the QC table and the subject list."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_table, read_tables, write_table
from mskseg.qc import summarise
from mskseg.workflow.logs import setup_logging


def main(*, records: list[Path], manifest: Path, table: Path, subjects: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "qc_summary")
    qc = read_tables(records)
    summary = summarise(qc, read_table(manifest))
    write_table(qc, table)
    write_table(summary, subjects)
    excluded = summary[~summary["qc_passed"]]
    logger.info("%d of %d subjects passed quality control", len(summary) - len(excluded), len(summary))
    for row in excluded.itertuples():
        logger.warning("EXCLUDED %s: %s", row.subject, row.qc_failures)
    for row in summary[summary["qc_fixes"] != ""].itertuples():
        logger.info("fixed %s: %s", row.subject, row.qc_fixes)


if __name__ == "__main__":
    main(records=[Path(p) for p in snakemake.input.records], manifest=Path(snakemake.input.manifest),  # noqa: F821
         table=Path(snakemake.output.table), subjects=Path(snakemake.output.subjects),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821

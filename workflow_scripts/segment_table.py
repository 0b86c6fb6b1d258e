"""Rule segment_table: the label-free QC of every segmented scan in one table, outliers flagged."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.workflow.logs import setup_logging


def main(*, records: list[Path], table: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "segment_table")
    from mskseg.metrics.labelfree import records_table

    frame = records_table(records, table)
    for row in frame[frame["flagged"]].itertuples():
        logger.warning("FLAGGED %s: %s", row.subject, row.reasons)
    logger.info("%d scans, %d flagged -> %s", len(frame), int(frame["flagged"].sum()), table)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(records=list(sm.input.records), table=Path(sm.output.table), log=sm.log[0])

"""Rule speed_accuracy: Dice, training and inference cost and device of every method that ran."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.atomic import write_text
from mskseg.io.tables import write_table
from mskseg.reporting.speed import MethodCosts, speed_accuracy_frame, speed_accuracy_page
from mskseg.workflow.logs import setup_logging


def main(*, methods: list[dict], table: Path, page: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "speed_accuracy")
    frame = speed_accuracy_frame([MethodCosts.from_dict(m) for m in methods])
    write_table(frame, table)
    write_text(page, speed_accuracy_page(frame))
    logger.info("%d methods -> %s\n%s", len(frame), table, frame.to_string(index=False))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(methods=[dict(m) for m in sm.params.methods], table=Path(sm.output.table), page=Path(sm.output.page),
         log=sm.log[0])

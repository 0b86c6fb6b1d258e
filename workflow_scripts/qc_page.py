"""Rule qc_page: a dataset's quality checks as a page of the report."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.atomic import write_text
from mskseg.io.tables import read_table
from mskseg.reporting.qc_page import qc_html
from mskseg.workflow.logs import setup_logging


def main(*, dataset: str, checks: Path, subjects: Path, page: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "qc_page")
    try:
        text = qc_html(dataset, read_table(checks), read_table(subjects))
    except ValueError as err:
        raise ValueError(f"{checks}, {subjects}: {err}") from err
    write_text(page, text)
    logger.info("%s -> %s", dataset, page)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(dataset=sm.wildcards.dataset, checks=Path(sm.input.checks), subjects=Path(sm.input.subjects),
         page=Path(sm.output.page), log=sm.log[0])

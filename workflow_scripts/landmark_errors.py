"""Rule landmark_errors: landmark errors (mm) of the shape-fitting methods and their seconds per inference step."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.atomic import write_text
from mskseg.io.tables import write_table
from mskseg.reporting.fitting import fitting_markdown, landmark_error_frame, step_frame
from mskseg.reporting.html import markdown_page
from mskseg.workflow.logs import setup_logging


def main(*, dataset: str, fitted: list[Path], records: list[Path], rows: list[tuple[str, str]],
         references: dict[str, list[Path]], table: Path, errors: Path, steps: Path, page: Path | None = None,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "landmark_errors")
    subjects = list(dict.fromkeys(s for _, s in rows))
    error_frame = landmark_error_frame(fitted, rows, references, subjects)
    step_table = step_frame(records, rows)
    write_table(error_frame, errors)
    write_table(step_table, steps)
    text = fitting_markdown(error_frame, step_table, dataset=dataset)
    write_text(table, text)
    if page is not None:
        write_text(page, markdown_page(text))
    logger.info("%d fitted shapes scored -> %s", len(rows), table)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(dataset=sm.wildcards.dataset, fitted=list(sm.input.fitted), records=list(sm.input.records),
         rows=[tuple(r) for r in sm.params.rows],
         references={k[len("reference_"):]: list(v) for k, v in sm.input.items() if k.startswith("reference_")},
         table=Path(sm.output.table), errors=Path(sm.output.errors), steps=Path(sm.output.steps),
         page=Path(sm.output.page), log=sm.log[0])

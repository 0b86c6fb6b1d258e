"""Rule knee_shape_fitting_table: the knee paper's Table 1 with its own numbers quoted, landmark errors, steps."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.atomic import write_text
from mskseg.io.tables import read_table, read_tables, write_table
from mskseg.reporting.html import markdown_page
from mskseg.reporting.knee_study import knee_study_markdown
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.paths import optional_input


def main(*, study: dict, metrics: list[Path], errors: Path | None, steps: Path | None, table: Path, csv: Path,
         page: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "knee_shape_fitting_table")
    text, frame = knee_study_markdown(
        read_tables(metrics), [tuple(r) for r in study["rows"]], dataset=study["dataset"],
        table_settings=study["tables"], metrics_shown=study["metrics"],
        errors=read_table(errors) if errors else None, steps=read_table(steps) if steps else None)
    write_table(frame, csv)
    write_text(table, text)
    write_text(page, markdown_page(text))
    logger.info("%s", text)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(study=dict(sm.params.study), metrics=[Path(p) for p in sm.input.metrics],
         errors=optional_input(sm.input, "errors"), steps=optional_input(sm.input, "steps"),
         table=Path(sm.output.table), csv=Path(sm.output.csv), page=Path(sm.output.page), log=sm.log[0])

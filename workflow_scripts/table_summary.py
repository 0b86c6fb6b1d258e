"""Rule table_summary: all Markdown tables of a dataset in one file."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.atomic import read_text, write_text
from mskseg.workflow.logs import setup_logging


def main(*, tables: list[Path], summary: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "table_summary")
    write_text(summary, "\n\n".join(read_text(p).strip() for p in tables) + "\n")
    logger.info("%d tables in %s", len(tables), summary)


if __name__ == "__main__":
    main(tables=[Path(p) for p in snakemake.input.tables], summary=Path(snakemake.output.summary),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821
